/**
 * vLLM's routes besides the OpenAI ones that clients and load balancers
 * probe, on a real server over weft-tiny-code's ranks: `GET /version` (with
 * the API key, as every route but the probes) and `GET`/`POST /ping`
 * (SageMaker's health probe, open like /health). Both were 404.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode } from './test-support/engine.js';

const KEY = 'sk-vllm-routes';
let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let url: string;

beforeAll(async () => {
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode, apiKey: KEY });
  url = await server.listen({ port: 0 });
});

afterAll(async () => {
  await server?.shutdown({ graceMs: 200 });
  await llm?.close();
});

describe("vLLM's probe routes", () => {
  it('GET /version: the package version with the key, 401 without', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await fetch(`${url}/version`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ version });
    expect((await fetch(`${url}/version`)).status).toBe(401);
  });

  it('GET and POST /ping answer as /health does, without the key', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await fetch(`${url}/ping`, { method });
      expect(r.status, method).toBe(200);
      expect(await r.json()).toEqual({ status: 'ok' });
    }
  });
});

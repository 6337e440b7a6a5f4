/**
 * The playground page in a real browser: Debian's chromium, headless, driven
 * by playwright-core. Type a prompt, press Generate, see the greedy text
 * stream in and the tokens-per-second line; then a chat turn. SKIPPED with
 * the reason when chromium is not installed.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type WeftServer } from './server.js';
import { loadEngine, tinyCode, tinyCodeCases } from './test-support/engine.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install -y chromium)`;

let llm: Awaited<ReturnType<typeof loadEngine>>;
let server: WeftServer;
let url: string;
let browser: BrowserContext;
const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));

beforeAll(async () => {
  if (missing) return;
  llm = await loadEngine(tinyCode);
  server = await createServer(llm, { modelDir: tinyCode });
  url = await server.listen({ port: 0 });
  // A fresh profile directory (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.shutdown({ graceMs: 500 });
  await llm?.close();
  rmSync(profile, { recursive: true, force: true });
});

describe('the playground page in headless Chromium', () => {
  it('type a prompt, see the streamed greedy text and tokens per second; then a chat turn', async (ctx) => {
    if (missing) {
      console.warn(`SKIPPED playground browser test: ${missing}`);
      ctx.skip();
    }
    const c = tinyCodeCases()[1]!;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await expect(page.title()).resolves.toContain('weft-tiny-code');
    await page.fill('#prompt', c.prompt);
    await page.fill('#max_tokens', '32');
    await page.fill('#temperature', '0');
    // Watch the output grow while it streams: several distinct lengths, not one jump.
    // (Page code as strings: this package compiles without the DOM's types.)
    await page.evaluate(`window.lengths = [];
      new MutationObserver(() => window.lengths.push(document.getElementById('output').textContent.length))
        .observe(document.getElementById('output'), { childList: true, characterData: true, subtree: true });`);
    await page.click('#send');
    await page.waitForFunction(`/32 tokens/.test(document.getElementById('stats').textContent) && !document.getElementById('send').disabled`, undefined, { timeout: 60_000 });
    // The model stops at its EOS (the page does not set ignore_eos), so the greedy text may end early.
    const out = await page.textContent('#output');
    expect(out!.startsWith(c.prompt)).toBe(true);
    expect(c.greedy_text.startsWith(out!.slice(c.prompt.length))).toBe(true);
    expect(out!.length).toBeGreaterThan(c.prompt.length + 20);
    const lengths = (await page.evaluate('window.lengths')) as number[];
    expect(new Set(lengths).size).toBeGreaterThan(3);
    expect(await page.textContent('#stats')).toMatch(/32 tokens · [\d.]+ tok\/s · first token \d+ ms/);

    await page.check('input[name=mode][value=chat]');
    await page.fill('#prompt', 'a function that adds two numbers');
    await page.fill('#max_tokens', '12');
    await page.click('#send');
    await page.waitForFunction(`document.querySelectorAll('#chatlog .m').length === 2 && !document.getElementById('send').disabled`, undefined, { timeout: 60_000 });
    const reply = await page.textContent('#chatlog .m:nth-child(2) span');
    expect(reply!.length).toBeGreaterThan(0);
    expect(await page.textContent('#stats')).toMatch(/tok\/s/);
    expect(errors).toEqual([]);
  });
});

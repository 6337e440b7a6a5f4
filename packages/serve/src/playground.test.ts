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

    // The completion sits above the input, where the eye goes after pressing Generate.
    const [outBox, promptBox] = [await page.locator('#output').boundingBox(), await page.locator('#prompt').boundingBox()];
    expect(outBox!.y + outBox!.height).toBeLessThanOrEqual(promptBox!.y);
    // The two mode buttons sit on one line, each centred on its label.
    const radios = await page.evaluate(`[...document.querySelectorAll('.mode label')].map((l) => { const r = l.querySelector('input').getBoundingClientRect(); const b = l.getBoundingClientRect(); return [r.top + r.height / 2, b.top + b.height / 2]; })`);
    const [[r1, l1], [r2, l2]] = radios as [[number, number], [number, number]];
    expect(Math.abs(r1 - r2)).toBeLessThan(1.5);
    expect(Math.abs(r1 - l1)).toBeLessThan(2);
    expect(Math.abs(r2 - l2)).toBeLessThan(2);

    await page.check('input[name=mode][value=chat]');
    await page.fill('#prompt', 'a function that adds two numbers');
    await page.fill('#max_tokens', '12');
    await page.click('#send');
    await page.waitForFunction(`document.querySelectorAll('#chatlog .m').length === 2 && !document.getElementById('send').disabled`, undefined, { timeout: 60_000 });
    const reply = await page.textContent('#chatlog .m:nth-child(2) span');
    expect(reply!.length).toBeGreaterThan(0);
    expect(reply).not.toContain('<|end_of_text|>');
    expect(await page.textContent('#stats')).toMatch(/tok\/s/);
    expect(errors).toEqual([]);
  });

  it('chat after an error and after Stop: the failed turn leaves no trace in the history, the error shows by the input, no empty bubble', async (ctx) => {
    if (missing) ctx.skip();
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1000, height: 700 });
    const sent: unknown[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/v1/chat/completions')) sent.push(JSON.parse(r.postData() ?? '{}'));
    });
    await page.goto(url);
    await page.check('input[name=mode][value=chat]');
    // A request the server refuses: max_tokens past the context.
    await page.fill('#max_tokens', '100000');
    await page.fill('#prompt', 'first try');
    await page.click('#send');
    await page.waitForFunction(`document.getElementById('error').textContent.length > 0`, undefined, { timeout: 30_000 });
    expect(await page.textContent('#error')).toMatch(/maximum context length/);
    expect(await page.textContent('#stats')).toBe('');
    expect(await page.locator('#chatlog .m').count()).toBe(0);
    expect(await page.inputValue('#prompt')).toBe('first try');
    // The error is in view without scrolling, right under the input.
    const [err, prompt] = [await page.locator('#error').boundingBox(), await page.locator('#prompt').boundingBox()];
    expect(err!.y + err!.height).toBeLessThanOrEqual(700);
    expect(err!.y - (prompt!.y + prompt!.height)).toBeLessThan(80);
    await page.screenshot({ path: join(tmpdir(), 'weft-playground-error.png') });
    // Stop before anything came back (the request held, as a busy server would): the turn is taken back too.
    const held: { abort(): Promise<void> }[] = [];
    await page.route('**/v1/chat/completions', (route) => void held.push(route));
    await page.fill('#max_tokens', '200');
    await page.click('#send');
    await expect.poll(() => held.length).toBe(1);
    await page.click('#stop');
    await page.waitForFunction(`!document.getElementById('send').disabled`);
    expect(await page.locator('#chatlog .m').count()).toBe(0);
    expect(await page.inputValue('#prompt')).toBe('first try');
    await page.unroute('**/v1/chat/completions');
    await held[0]!.abort().catch(() => {});
    // Then one that works: it carries exactly one user message.
    await page.fill('#max_tokens', '8');
    await page.fill('#prompt', 'second try');
    await page.click('#send');
    await page.waitForFunction(`document.querySelectorAll('#chatlog .m').length === 2 && !document.getElementById('send').disabled`, undefined, { timeout: 60_000 });
    expect((sent.at(-1) as { messages: unknown[] }).messages).toEqual([{ role: 'user', content: 'second try' }]);
    expect(await page.textContent('#error')).toBe('');
  });

  it('usable at phone width (375 px): nothing wider than the screen, input and buttons in view', async (ctx) => {
    if (missing) ctx.skip();
    const page = await browser.newPage();
    await page.setViewportSize({ width: 375, height: 740 });
    await page.goto(url);
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    for (const sel of ['#prompt', '#send', '#stop', '#max_tokens', 'input[name=mode][value=chat]']) {
      const b = await page.locator(sel).boundingBox();
      expect(b!.x, sel).toBeGreaterThanOrEqual(0);
      expect(b!.x + b!.width, sel).toBeLessThanOrEqual(375);
    }
    await page.screenshot({ path: join(tmpdir(), 'weft-playground-375.png'), fullPage: true });
  });
});

/**
 * The playground page at `/`, as llama.cpp's server has one: a prompt or chat
 * box, the main sampling controls, streamed output and tokens per second.
 * One self-contained page (no build step, no external assets) that talks to
 * this server's own /v1 routes.
 */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from './context.js';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(model: string, hasTemplate: boolean, hasTokenizer: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft · ${escapeHtml(model)}</title>
<style>
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{padding:10px 16px;background:#222;color:#eee;display:flex;flex-wrap:wrap;gap:4px 14px;align-items:baseline}
header b{font-size:17px} header span{opacity:.75;overflow-wrap:anywhere}
main{display:grid;grid-template-columns:minmax(0,1fr) 260px;gap:16px;padding:16px;max-width:1200px;margin:auto}
.mode{display:flex;flex-wrap:wrap;gap:6px 18px;margin:0 0 10px;padding:0;border:0}
.mode label{display:inline-flex;align-items:center;gap:6px;margin:0}
.mode input{margin:0}
textarea{width:100%;font:14px/1.4 ui-monospace,monospace;padding:8px;min-height:96px;resize:vertical}
.out{white-space:pre-wrap;overflow-wrap:anywhere;font:14px/1.4 ui-monospace,monospace;background:#fff;border:1px solid #ccc;padding:10px;min-height:120px;margin-bottom:10px}
.out:empty::before{content:attr(data-empty);opacity:.5}
#chatlog{min-height:120px;margin-bottom:10px}
#chatlog:empty::before{content:'Chat messages appear here.';opacity:.5}
#chatlog .m{margin:6px 0;padding:6px 8px;background:#fff;border:1px solid #ddd;white-space:pre-wrap;overflow-wrap:anywhere;font:14px/1.4 ui-monospace,monospace}
#chatlog .m b{font-family:system-ui;font-size:12px;opacity:.6;display:block}
.bar{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px;align-items:center}
button{padding:7px 14px}
#error{color:#a00;background:#fee;border:1px solid #e99;padding:6px 8px;margin-top:6px}
#error:empty{display:none}
#stats{font-size:13px;opacity:.8}
fieldset.sampling{border:1px solid #ccc;background:#fff;margin:0}
.sampling label{display:flex;justify-content:space-between;align-items:center;gap:8px;margin:5px 0}
.sampling input{width:110px}
[hidden]{display:none!important}
@media (max-width:700px){main{grid-template-columns:minmax(0,1fr);padding:10px}.sampling input{width:50%}}
</style></head>
<body>
<header><b>weft</b><span>model: <code id="model">${escapeHtml(model)}</code></span><span>OpenAI-compatible API at /v1</span></header>
<main>
<section>
  <fieldset class="mode"><legend hidden>mode</legend>
    <label><input type="radio" name="mode" value="completion" checked> completion</label>
    <label><input type="radio" name="mode" value="chat" ${hasTemplate ? '' : 'disabled'}> chat${hasTemplate ? '' : ' (this model has no chat template)'}</label>
  </fieldset>
  <div id="output" class="out" aria-live="polite" data-empty="The prompt and its completion appear here."></div>
  <div id="chatlog" aria-live="polite" hidden></div>
  <textarea id="prompt" aria-label="prompt" placeholder="${hasTokenizer ? 'Type a prompt…' : 'This model has no tokenizer: type token ids, e.g. 1, 2, 3'}">${hasTokenizer ? 'def fibonacci(n):\n' : ''}</textarea>
  <div class="bar"><button id="send">Generate</button><button id="stop" disabled>Stop</button><button id="clear">Clear</button><span id="stats"></span></div>
  <div id="error" role="alert"></div>
</section>
<aside><fieldset class="sampling"><legend>sampling</legend>
  <label>max tokens <input id="max_tokens" type="number" min="1" value="128"></label>
  <label>temperature <input id="temperature" type="number" min="0" step="0.1" value="0"></label>
  <label>top p <input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1"></label>
  <label>top k <input id="top_k" type="number" min="0" value="0"></label>
  <label>min p <input id="min_p" type="number" min="0" max="1" step="0.05" value="0"></label>
  <label>repetition penalty <input id="repetition_penalty" type="number" min="0.1" step="0.05" value="1"></label>
  <label>seed <input id="seed" type="number" placeholder="random"></label>
  <label>stop <input id="stop_str" type="text" placeholder="none"></label>
  <label>API key <input id="api_key" type="password" placeholder="if set"></label>
</fieldset></aside>
</main>
<script>
const $ = (id) => document.getElementById(id);
const hasTokenizer = ${hasTokenizer ? 'true' : 'false'};
/** The conversation so far: only turns that completed (or were stopped with some text). */
let history = [];
let ctl = null;
const num = (id) => { const v = $(id).value.trim(); return v === '' ? undefined : Number(v); };
const mode = () => document.querySelector('input[name=mode]:checked').value;
function showMode() { const chat = mode() === 'chat'; $('chatlog').hidden = !chat; $('output').hidden = chat; $('send').textContent = chat ? 'Send' : 'Generate'; }
document.querySelectorAll('input[name=mode]').forEach((r) => r.addEventListener('change', showMode));
function params() {
  const p = { model: $('model').textContent, stream: true, stream_options: { include_usage: true }, return_token_ids: true,
    max_tokens: num('max_tokens'), temperature: num('temperature'), top_p: num('top_p'), top_k: num('top_k'), min_p: num('min_p'),
    repetition_penalty: num('repetition_penalty'), seed: num('seed') };
  const stop = $('stop_str').value; if (stop) p.stop = [stop];
  return p;
}
function addMessage(role, text) {
  const d = document.createElement('div'); d.className = 'm';
  const b = document.createElement('b'); b.textContent = role; d.append(b);
  const t = document.createElement('span'); t.textContent = text; d.append(t);
  $('chatlog').append(d); d.scrollIntoView({ block: 'nearest' }); return d;
}
async function run() {
  if (ctl) return;
  const body = params();
  const chat = mode() === 'chat';
  const text = $('prompt').value;
  let userBubble = null;
  let replyBubble = null;
  let url;
  if (chat) {
    // The request carries this turn; history takes it only once the reply came.
    body.messages = history.concat([{ role: 'user', content: text }]);
    url = '/v1/chat/completions';
    userBubble = addMessage('user', text);
    $('prompt').value = '';
  } else {
    body.prompt = hasTokenizer ? text : text.split(/[\\s,]+/).filter(Boolean).map(Number);
    url = '/v1/completions';
    $('output').textContent = hasTokenizer ? text : '';
  }
  const headers = { 'content-type': 'application/json' };
  if ($('api_key').value) headers.authorization = 'Bearer ' + $('api_key').value;
  ctl = new AbortController();
  $('send').disabled = true; $('stop').disabled = false; $('stats').textContent = 'waiting…'; $('error').textContent = '';
  const t0 = performance.now(); let tFirst = 0; let tokens = 0; let reply = '';
  const append = (s) => {
    if (!s) return;
    if (!chat) { $('output').textContent += s; return; }
    // The assistant's bubble appears with its first text, never empty.
    if (!replyBubble) replyBubble = addMessage('assistant', '');
    replyBubble.lastChild.textContent += s;
  };
  const show = () => {
    const rate = tokens > 1 ? ((tokens - 1) / ((performance.now() - tFirst) / 1000)).toFixed(1) : '–';
    $('stats').textContent = tokens + ' tokens · ' + rate + ' tok/s · first token ' + (tFirst ? Math.round(tFirst - t0) + ' ms' : '–');
  };
  let failed = null;
  try {
    const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: ctl.signal });
    if (!res.ok) { const e = await res.json().catch(() => ({})); throw new Error((e.error && e.error.message) || res.status + ' ' + res.statusText); }
    const reader = res.body.getReader(); const dec = new TextDecoder(); let buf = '';
    for (;;) {
      const { value, done } = await reader.read(); if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\\n\\n')) >= 0) {
        const frame = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!frame.startsWith('data: ')) continue;
        const data = frame.slice(6); if (data === '[DONE]') continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const c of chunk.choices) {
          const piece = c.text !== undefined ? c.text : (c.delta && c.delta.content) || '';
          const ids = c.token_ids || [];
          if (ids.length) { if (!tFirst) tFirst = performance.now(); tokens += ids.length; }
          reply += piece;
          append(hasTokenizer ? piece : ids.length ? ids.join(' ') + ' ' : '');
        }
        show();
      }
    }
  } catch (e) {
    failed = e;
  } finally {
    const stopped = failed && failed.name === 'AbortError';
    if (chat) {
      if (!failed || (stopped && reply)) {
        history.push({ role: 'user', content: text }, { role: 'assistant', content: reply });
      } else {
        // Nothing came of this turn: take it back, and give the user their text to send again.
        userBubble && userBubble.remove(); replyBubble && replyBubble.remove();
        if (!$('prompt').value) $('prompt').value = text;
      }
    }
    if (failed && !stopped) { $('error').textContent = 'error: ' + failed.message; if (!tokens) $('stats').textContent = ''; }
    if (stopped) $('stats').textContent += ' · stopped';
    $('send').disabled = false; $('stop').disabled = true; ctl = null;
  }
}
$('send').onclick = run;
$('stop').onclick = () => ctl && ctl.abort();
$('clear').onclick = () => { history = []; $('chatlog').textContent = ''; $('output').textContent = ''; $('stats').textContent = ''; $('error').textContent = ''; };
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run(); });
</script>
</body></html>`;
}

export function playgroundRoute(app: FastifyInstance, ctx: ServeContext): void {
  const html = page(ctx.model, ctx.template !== null, ctx.tokenizer !== null);
  app.get('/', { config: { public: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(html));
}

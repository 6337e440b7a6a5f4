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
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{padding:10px 18px;background:#222;color:#eee;display:flex;gap:14px;align-items:baseline}
header b{font-size:17px} header span{opacity:.75}
main{display:grid;grid-template-columns:1fr 250px;gap:16px;padding:16px;max-width:1200px;margin:auto}
textarea{width:100%;box-sizing:border-box;font:14px/1.4 ui-monospace,monospace;padding:8px;min-height:110px}
#output{white-space:pre-wrap;font:14px/1.4 ui-monospace,monospace;background:#fff;border:1px solid #ccc;padding:10px;min-height:160px}
#chatlog .m{margin:6px 0;padding:6px 8px;background:#fff;border:1px solid #ddd;white-space:pre-wrap;font:14px/1.4 ui-monospace,monospace}
#chatlog .m b{font-family:system-ui;font-size:12px;opacity:.6;display:block}
fieldset{border:1px solid #ccc;background:#fff} label{display:flex;justify-content:space-between;gap:6px;margin:5px 0}
label input{width:90px} button{padding:6px 14px;margin-right:6px}
#stats{font-size:13px;opacity:.8;margin-top:6px} .err{color:#b00}
</style></head>
<body>
<header><b>weft</b><span>model: <code id="model">${escapeHtml(model)}</code></span><span>OpenAI-compatible API at /v1</span></header>
<main>
<section>
  <div><label style="justify-content:flex-start"><input type="radio" name="mode" value="completion" checked> completion</label>
  <label style="justify-content:flex-start"><input type="radio" name="mode" value="chat" ${hasTemplate ? '' : 'disabled'}> chat${hasTemplate ? '' : ' (this model has no chat template)'}</label></div>
  <div id="chatlog"></div>
  <textarea id="prompt" placeholder="${hasTokenizer ? 'Type a prompt…' : 'This model has no tokenizer: type token ids, e.g. 1, 2, 3'}">${hasTokenizer ? 'def fibonacci(n):\n' : ''}</textarea>
  <div><button id="send">Generate</button><button id="stop" disabled>Stop</button><button id="clear">Clear</button></div>
  <div id="output" aria-live="polite"></div>
  <div id="stats"></div>
</section>
<aside><fieldset><legend>sampling</legend>
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
let history = [];
let ctl = null;
const num = (id) => { const v = $(id).value.trim(); return v === '' ? undefined : Number(v); };
const mode = () => document.querySelector('input[name=mode]:checked').value;
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
  $('chatlog').append(d); return t;
}
async function run() {
  const body = params();
  let target;
  let url;
  const text = $('prompt').value;
  if (mode() === 'chat') {
    history.push({ role: 'user', content: text }); addMessage('user', text);
    body.messages = history; url = '/v1/chat/completions'; target = addMessage('assistant', '');
    $('prompt').value = '';
  } else {
    body.prompt = hasTokenizer ? text : text.split(/[\\s,]+/).filter(Boolean).map(Number);
    url = '/v1/completions'; target = $('output'); target.textContent = hasTokenizer ? text : '';
  }
  const headers = { 'content-type': 'application/json' };
  if ($('api_key').value) headers.authorization = 'Bearer ' + $('api_key').value;
  ctl = new AbortController();
  $('send').disabled = true; $('stop').disabled = false; $('stats').textContent = 'waiting…'; $('stats').className = '';
  const t0 = performance.now(); let tFirst = 0; let tokens = 0; let reply = '';
  const show = () => {
    const now = performance.now();
    const rate = tokens > 1 ? ((tokens - 1) / ((now - tFirst) / 1000)).toFixed(1) : '–';
    $('stats').textContent = tokens + ' tokens · ' + rate + ' tok/s · first token ' + (tFirst ? Math.round(tFirst - t0) + ' ms' : '–');
  };
  try {
    const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: ctl.signal });
    if (!res.ok) { const e = await res.json().catch(() => ({})); throw new Error((e.error && e.error.message) || res.statusText); }
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
          if (piece) { reply += piece; target.textContent += hasTokenizer ? piece : ''; }
          if (!hasTokenizer && ids.length) target.textContent += ids.join(' ') + ' ';
        }
        show();
      }
    }
    if (mode() === 'chat') history.push({ role: 'assistant', content: reply });
  } catch (e) {
    if (e.name !== 'AbortError') { $('stats').textContent = 'error: ' + e.message; $('stats').className = 'err'; }
  } finally {
    $('send').disabled = false; $('stop').disabled = true; ctl = null;
  }
}
$('send').onclick = run;
$('stop').onclick = () => ctl && ctl.abort();
$('clear').onclick = () => { history = []; $('chatlog').textContent = ''; $('output').textContent = ''; $('stats').textContent = ''; };
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run(); });
</script>
</body></html>`;
}

export function playgroundRoute(app: FastifyInstance, ctx: ServeContext): void {
  const html = page(ctx.model, ctx.template !== null, ctx.tokenizer !== null);
  app.get('/', { config: { public: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(html));
}

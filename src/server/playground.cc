// GET /: a small self-contained page to try the model. It streams from
// /generate_stream and shows tokens as they arrive, with tokens/s.
#include "server/server.h"

namespace flashneox {

namespace {

const char* const kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flashneox playground</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.3rem; margin-bottom: .2rem; }
  #model { color: #666; font-size: .9rem; margin-bottom: 1rem; }
  textarea { width: 100%; min-height: 6rem; font: 14px/1.4 ui-monospace, monospace; padding: .5rem; box-sizing: border-box; }
  .controls { display: flex; flex-wrap: wrap; gap: .8rem 1.2rem; margin: .8rem 0; align-items: end; }
  label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
  input { width: 7rem; padding: .25rem; }
  button { padding: .45rem 1.2rem; font-size: .95rem; cursor: pointer; }
  #output { white-space: pre-wrap; font: 14px/1.45 ui-monospace, monospace; background: #f6f6f3; border: 1px solid #ddd;
            padding: .8rem; min-height: 8rem; border-radius: 4px; }
  #output .prompt { color: #777; }
  #stats { font-size: .85rem; color: #555; margin-top: .4rem; min-height: 1.2rem; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>flashneox playground</h1>
<div id="model">loading model info…</div>
<textarea id="prompt">ROMEO:
</textarea>
<div class="controls">
  <label>max new tokens <input id="max_new_tokens" type="number" value="64" min="1"></label>
  <label>temperature (0 = greedy) <input id="temperature" type="number" value="0.8" min="0" step="0.1"></label>
  <label>top p <input id="top_p" type="number" value="0.95" min="0.01" max="0.99" step="0.01"></label>
  <label>top k <input id="top_k" type="number" value="" min="1" placeholder="off"></label>
  <label>seed <input id="seed" type="number" value="" min="0" placeholder="random"></label>
  <label>API key <input id="api_key" type="password" placeholder="if required"></label>
  <button id="generate">Generate</button>
  <button id="stop" disabled>Stop</button>
</div>
<div id="output"></div>
<div id="stats"></div>
<script>
const $ = (id) => document.getElementById(id);
let controller = null;
$('api_key').value = localStorage.getItem('flashneox_api_key') || '';
function headers() {
  const h = {'Content-Type': 'application/json'};
  const key = $('api_key').value.trim();
  if (key) { h['Authorization'] = 'Bearer ' + key; localStorage.setItem('flashneox_api_key', key); }
  return h;
}
fetch('/info', {headers: headers()}).then(r => r.json()).then(info => {
  $('model').textContent = info.model_id ? `${info.model_id} · ${info.model_dtype} · ${info.model_device_type} · up to ${info.max_total_tokens} tokens` : '';
}).catch(() => { $('model').textContent = ''; });
function parameters() {
  const p = {max_new_tokens: parseInt($('max_new_tokens').value || '64'), details: true};
  const t = parseFloat($('temperature').value);
  if (t > 0) {
    p.do_sample = true; p.temperature = t;
    const topP = parseFloat($('top_p').value); if (topP > 0 && topP < 1) p.top_p = topP;
    const topK = parseInt($('top_k').value); if (topK > 0) p.top_k = topK;
    const seed = parseInt($('seed').value); if (seed >= 0) p.seed = seed;
  }
  return p;
}
async function generate() {
  const out = $('output'), stats = $('stats');
  out.innerHTML = '';
  const promptSpan = document.createElement('span');
  promptSpan.className = 'prompt';
  promptSpan.textContent = $('prompt').value;
  const gen = document.createElement('span');
  gen.id = 'generated';
  out.append(promptSpan, gen);
  stats.textContent = 'waiting…';
  controller = new AbortController();
  $('generate').disabled = true; $('stop').disabled = false;
  const start = performance.now();
  let first = null, count = 0;
  try {
    const res = await fetch('/generate_stream', {method: 'POST', headers: headers(), signal: controller.signal,
      body: JSON.stringify({inputs: $('prompt').value, parameters: parameters()})});
    if (!res.ok) { const e = await res.json(); throw new Error(e.error || res.statusText); }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!line.startsWith('data:')) continue;
        const event = JSON.parse(line.slice(5));
        if (event.error) throw new Error(event.error);
        if (!event.token.special) gen.textContent += event.token.text;
        count++;
        if (first === null) first = performance.now();
        const secs = (performance.now() - first) / 1000;
        stats.textContent = `${count} tokens · first token ${Math.round(first - start)} ms` +
          (count > 1 && secs > 0 ? ` · ${((count - 1) / secs).toFixed(1)} tokens/s` : '');
        if (event.details) stats.textContent += ` · finished: ${event.details.finish_reason}`;
      }
    }
  } catch (err) {
    if (err.name !== 'AbortError') { const e = document.createElement('div'); e.className = 'error'; e.textContent = err.message; out.append(e); }
    else stats.textContent += ' · stopped';
  } finally {
    $('generate').disabled = false; $('stop').disabled = true; controller = null;
  }
}
$('generate').addEventListener('click', generate);
$('stop').addEventListener('click', () => controller && controller.abort());
$('prompt').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) generate(); });
</script>
</body>
</html>
)html";

}  // namespace

void install_playground_route(Router& router) {
  router.get("/", [](const HttpRequest&, HttpResponse& res) {
    res.content_type = "text/html; charset=utf-8";
    res.body = kPage;
  });
}

}  // namespace flashneox

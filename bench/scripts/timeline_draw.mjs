// How long the dashboard takes to draw a flare's timeline, scrolled from top
// to bottom in headless Chromium (the page reports each draw's duration in
// `#timeline`'s `data-draw-ms`). Prints the median and the largest.
//
//   node --experimental-websocket bench/scripts/timeline_draw.mjs http://127.0.0.1:PORT FLARE_ID [TOKEN]
//
// Needs Node 20+ (run with --experimental-websocket below Node 22) and
// /usr/bin/chromium.
import { spawn } from 'node:child_process';

const [base, flareId, token = ''] = process.argv.slice(2);
const PORT = 9334;
const chrome = spawn('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', `--remote-debugging-port=${PORT}`,
  '--user-data-dir=/tmp/burst-timeline-draw', '--window-size=1400,900', 'about:blank'], { stdio: 'ignore' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  let targets;
  for (let i = 0; i < 50 && !targets; i++) {
    try { targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json(); } catch { await sleep(200); }
  }
  const ws = new WebSocket(targets.find((t) => t.type === 'page').webSocketDebuggerUrl);
  await new Promise((r) => ws.addEventListener('open', r));
  let id = 0; const pending = new Map();
  ws.addEventListener('message', (m) => { const msg = JSON.parse(m.data); pending.get(msg.id)?.(msg); pending.delete(msg.id); });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  const ev = async (expression) => (await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true })).result.result?.value;
  const waitFor = async (expr) => { for (let t = Date.now(); Date.now() - t < 60000; await sleep(100)) if (await ev(expr)) return; throw new Error(`timed out: ${expr}`); };
  await send('Page.navigate', { url: `${base}/` });
  await sleep(500);
  await ev(`sessionStorage.setItem('burst-token', ${JSON.stringify(token)}); location.hash = '#/flares/${flareId}'; location.reload(); 1`);
  await sleep(500);
  await waitFor(`document.body.dataset.view === 'flare' && document.body.dataset.ready === '1' && document.querySelector('#timeline')`);
  const rows = await ev(`document.querySelector('#timeline').dataset.workers`);
  const draws = [];
  const steps = 40;
  for (let i = 0; i <= steps; i++) {
    await ev(`(() => { const c = document.querySelector('#timeline').closest('.timeline-scroll') || document.querySelector('#timeline').parentElement.parentElement;
      c.scrollTop = (c.scrollHeight - c.clientHeight) * ${i / steps}; return 1; })()`);
    await ev(`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`);
    draws.push(Number(await ev(`document.querySelector('#timeline').dataset.drawMs`)));
  }
  draws.sort((a, b) => a - b);
  console.log(JSON.stringify({ workers: Number(rows), draws: draws.length, median_ms: draws[draws.length >> 1], max_ms: draws[draws.length - 1] }));
} finally {
  chrome.kill();
}

// The dashboard's entry: token handling, hash routing, the live stream,
// and the three views (flares list, one flare, definitions and hosts).

import * as api from '/dashboard/api.js';
import { formatBytes, formatDuration, formatTime } from '/dashboard/api.js';
import { createLegend, createTimeline } from '/dashboard/timeline.js';
import { packCount, renderMatrix, renderTotals } from '/dashboard/matrix.js';

const FINAL = new Set(['succeeded', 'failed']);
const STATUSES = ['queued', 'running', 'succeeded', 'failed'];
const $ = (sel) => document.querySelector(sel);

/** A small element builder, so views read as structure rather than calls. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key in el) el[key] = value;
    else el.setAttribute(key, value);
  }
  el.append(...children.flat(Infinity).filter((c) => c != null).map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

// Header cells of numeric columns align with their right-aligned numbers.
const NUMERIC = new Set(['burst', 'gran.', 'duration', 'workers fin./started', 'version', 'size', 'slots', 'free slots',
  'pack', 'workers', 'count']);
const heads = (titles) => h('thead', {}, h('tr', {}, titles.map((t) => h('th', { class: NUMERIC.has(t) ? 'num' : null, text: t }))));

const badge = (status, id) => h('span', { class: `badge ${status}`, id, text: status });

function flareDuration(doc, now = Date.now() * 1000) {
  if (!doc.started_us) return doc.status === 'queued' ? 'queued' : '–';
  return formatDuration((doc.finished_us || now) - doc.started_us);
}

// ---- shell: readiness, errors, login, the stream ----

const state = { view: null, seq: 0, stopStream: null, lastFlare: null };

function setReady(ready) { document.body.dataset.ready = ready ? '1' : '0'; }

function showError(err) {
  const banner = $('#error');
  banner.textContent = err && err.message ? err.message : String(err);
  banner.hidden = false;
}
function clearError() { $('#error').hidden = true; $('#error').textContent = ''; }

/** Every failure ends here: a 401 asks for a token, anything else shows. */
function fail(err) {
  if (err instanceof api.ApiError && err.status === 401) showLogin(err.message);
  else showError(err);
}

function stopStream() {
  if (state.stopStream) state.stopStream();
  state.stopStream = null;
  setLive(false);
}

function setLive(live) {
  const el = $('#live');
  el.textContent = live ? 'live' : 'offline';
  el.classList.toggle('on', live);
}

function startStream() {
  stopStream();
  state.stopStream = api.followFlares({
    onOpen: () => { setLive(true); if (state.view && state.view.onOpen) state.view.onOpen(); },
    onClose: () => setLive(false),
    onFlare: (doc) => { if (state.view && state.view.onFlare) state.view.onFlare(doc); },
    onResync: () => { if (state.view && state.view.onResync) state.view.onResync(); },
    onUnauthorized: (err) => showLogin(err.message),
  });
}

function showLogin(message) {
  stopStream();
  destroyView();
  $('#view').replaceChildren();
  $('#view').hidden = true;
  $('#logout').hidden = true;
  $('#login-view').hidden = false;
  if (message) showError(message); else clearError();
  setReady(false);
  $('#token').value = '';
  $('#token').focus();
}

function hideLogin() {
  $('#login-view').hidden = true;
  $('#view').hidden = false;
  $('#logout').hidden = false;
}

/** Checks the stored token (or none) against the API, then shows the route. */
async function start() {
  setReady(false);
  let flares;
  try {
    flares = await api.listFlares();
  } catch (err) {
    fail(err);
    if (!(err instanceof api.ApiError && err.status === 401)) setReady(true);
    return;
  }
  hideLogin();
  clearError();
  startStream();
  route(flares);
}

$('#login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = $('#token').value.trim();
  if (!token) return;
  api.setToken(token);
  start();
});

$('#logout').addEventListener('click', () => {
  api.clearToken();
  showLogin();
});

// ---- routing ----

function destroyView() {
  if (state.view && state.view.destroy) state.view.destroy();
  state.view = null;
}

function route(prefetched) {
  if (!$('#login-view').hidden) return;
  destroyView();
  clearError();
  setReady(false);
  const seq = ++state.seq;
  const hash = location.hash.replace(/^#/, '') || '/';
  const root = $('#view');
  root.replaceChildren();
  const live = () => seq === state.seq; // a later route makes earlier work moot
  let name = 'flares';
  const m = hash.match(/^\/flares\/(.+)$/);
  if (m) {
    name = 'flare';
    state.lastFlare = decodeURIComponent(m[1]);
    state.view = flareView(root, state.lastFlare, live);
  } else if (hash === '/definitions') {
    name = 'definitions';
    state.view = definitionsView(root, live);
  } else {
    state.view = flaresView(root, live, Array.isArray(prefetched) ? prefetched : null);
  }
  document.body.dataset.view = name;
  const navFlare = $('#nav-flare');
  if (state.lastFlare) {
    navFlare.hidden = false;
    navFlare.href = `#/flares/${encodeURIComponent(state.lastFlare)}`;
    navFlare.textContent = `Flare ${state.lastFlare}`;
  }
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === name);
}

window.addEventListener('hashchange', () => route());

// ---- view: the flares list ----

function flaresView(root, live, prefetched) {
  const docs = new Map();
  const rows = new Map();
  const filter = h('select', { id: 'status-filter', onchange: applyFilter },
    h('option', { value: 'all', text: 'all' }), STATUSES.map((s) => h('option', { value: s, text: s })));
  const count = h('span', { class: 'muted' });
  const tbody = h('tbody');
  const table = h('table', { id: 'flares', class: 'grid' },
    heads(['flare', 'status', 'definition', 'burst', 'gran.', 'backend', 'started', 'duration', 'workers fin./started']),
    tbody);
  root.append(
    h('div', { class: 'toolbar' }, h('h1', { text: 'Flares' }), count, h('span', { class: 'spacer' }),
      h('label', { for: 'status-filter', text: 'status ' }), filter),
    h('div', { class: 'table-wrap' }, table),
  );

  function rowFor(doc) {
    return h('tr', { dataset: { flareId: doc.flare_id, status: doc.status } },
      h('td', { class: 'mono' }, h('a', { href: `#/flares/${encodeURIComponent(doc.flare_id)}`, text: doc.flare_id })),
      h('td', {}, badge(doc.status)),
      h('td', { text: `${doc.definition}@${doc.version}` }),
      h('td', { class: 'num', text: doc.burst_size }),
      h('td', { class: 'num', text: doc.granularity }),
      h('td', { text: doc.backend }),
      h('td', { class: 'mono', text: formatTime(doc.started_us) }),
      h('td', { class: 'num duration', text: flareDuration(doc) }),
      h('td', { class: 'num', text: `${doc.workers_finished} / ${doc.workers_started}` }));
  }

  function matches(status) { return filter.value === 'all' || filter.value === status; }

  function applyFilter() {
    let shown = 0;
    for (const [id, tr] of rows) {
      tr.hidden = !matches(docs.get(id).status);
      if (!tr.hidden) shown++;
    }
    count.textContent = `${shown} of ${rows.size}`;
  }

  function upsert(doc) {
    const tr = rowFor(doc);
    tr.hidden = !matches(doc.status);
    const old = rows.get(doc.flare_id);
    if (old) old.replaceWith(tr); else tbody.prepend(tr);
    docs.set(doc.flare_id, doc);
    rows.set(doc.flare_id, tr);
  }

  function renderAll(list) {
    docs.clear();
    rows.clear();
    const frag = document.createDocumentFragment();
    for (let i = list.length - 1; i >= 0; i--) { // the API sends oldest first
      const tr = rowFor(list[i]);
      docs.set(list[i].flare_id, list[i]);
      rows.set(list[i].flare_id, tr);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
    applyFilter();
  }

  async function load() {
    setReady(false);
    try {
      const list = prefetched || await api.listFlares();
      prefetched = null;
      if (!live()) return;
      renderAll(list);
    } catch (err) {
      if (live()) fail(err);
    }
    if (live()) setReady(true);
  }

  // Running flares' durations grow; this only re-renders text, no requests.
  const tick = setInterval(() => {
    const now = Date.now() * 1000;
    for (const [id, doc] of docs) {
      if (doc.status === 'running') rows.get(id).querySelector('.duration').textContent = flareDuration(doc, now);
    }
  }, 1000);

  load();
  return {
    onFlare(doc) { upsert(doc); applyFilter(); },
    onResync: load,
    destroy() { clearInterval(tick); },
  };
}

// ---- view: one flare ----

function flareView(root, id, live) {
  const header = h('section', { class: 'flare-head' });
  const progress = h('section', { class: 'progress', id: 'progress' });
  const body = h('div', { class: 'flare-body' });
  root.append(header, progress, body);
  let doc = null;
  let results = 'none'; // none | loading | done
  let tick = 0;

  function renderHeader() {
    const packs = doc.placement && doc.placement.length ? doc.placement.length
      : Math.ceil(doc.burst_size / Math.max(1, doc.granularity));
    const fact = (label, value, cls) => h('div', { class: 'fact' },
      h('span', { class: 'label', text: label }), h('span', { class: cls || 'value', text: value }));
    header.replaceChildren(
      h('div', { class: 'title' }, h('h1', { class: 'mono', text: doc.flare_id }), badge(doc.status, 'flare-status')),
      h('div', { class: 'facts' },
        fact('definition', `${doc.definition}@${doc.version}`),
        fact('backend', doc.backend),
        fact('burst size', doc.burst_size),
        fact('granularity', doc.granularity),
        fact('packs', packs),
        fact('packing', doc.packing),
        fact('created', formatTime(doc.created_us)),
        fact('started', formatTime(doc.started_us)),
        fact('duration', flareDuration(doc), 'value duration'),
        fact('deadline', doc.deadline_ms ? `${doc.deadline_ms} ms` : '–'),
        doc.dataset ? fact('dataset', doc.dataset) : null));
    document.title = `burst · ${doc.flare_id}`;
  }

  function renderProgress() {
    if (FINAL.has(doc.status)) { progress.replaceChildren(); progress.hidden = true; return; }
    progress.hidden = false;
    const bar = h('progress', { max: doc.burst_size || 1, value: doc.workers_finished });
    progress.replaceChildren(h('span', { class: 'label', text: doc.status === 'queued' ? 'queued' : 'running' }),
      bar, h('span', { id: 'progress-text', text:
        `${doc.workers_finished} / ${doc.burst_size} workers finished · ${doc.workers_started} started` }));
  }

  async function loadResults() {
    if (results !== 'none') return;
    results = 'loading';
    setReady(false);
    // The doc may say "finished" a moment before the results are kept.
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        const res = await api.getResults(id);
        if (!live()) return;
        renderResults(body, res);
        results = 'done';
        setReady(true);
        return;
      } catch (err) {
        if (!live()) return;
        if (!(err instanceof api.ApiError && err.status === 409)) { results = 'none'; fail(err); setReady(true); return; }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    results = 'none';
    showError('the flare finished but its results are not available yet');
    setReady(true);
  }

  function update(next) {
    doc = next;
    renderHeader();
    renderProgress();
    if (FINAL.has(doc.status)) loadResults();
    else setReady(true);
  }

  async function refetch() {
    try {
      const next = await api.getFlare(id);
      if (live()) update(next);
    } catch (err) {
      if (live()) { fail(err); setReady(true); }
    }
  }

  tick = setInterval(() => {
    if (doc && doc.status === 'running') header.querySelector('.duration').textContent = flareDuration(doc);
  }, 1000);

  refetch();
  return {
    onFlare(next) { if (next.flare_id === id && doc && results === 'none') update(next); },
    // Changes made while the stream was down are not replayed; ask once.
    onOpen() { if (doc && !FINAL.has(doc.status)) refetch(); },
    onResync() { if (doc && !FINAL.has(doc.status)) refetch(); },
    destroy() { clearInterval(tick); if (body.timeline) body.timeline.destroy(); },
  };
}

function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', { text: title }), ...children);
}

function renderResults(body, res) {
  const workers = res.workers || [];
  const byId = new Map(workers.map((w) => [w.worker_id, w]));
  const failure = res.failure;
  const failedId = failure && failure.worker_id != null ? failure.worker_id : null;
  const parts = [];

  if (failure) {
    const who = failedId != null ? `worker ${failedId}` : 'flare';
    parts.push(h('div', { id: 'failure', class: 'failure', dataset: { workerId: failedId ?? '', kind: failure.kind } },
      `${who}: ${failure.kind}: ${failure.message}`));
  }

  const legend = createLegend();
  const tlHost = h('div', { class: 'timeline' });
  parts.push(section('Timeline', legend, tlHost));

  const trafficHost = h('div');
  const bytesHost = h('div');
  const placement = h('table', { id: 'placement', class: 'grid compact' },
    heads(['pack', 'workers', 'count', 'host']),
    h('tbody', {}, (res.placement || []).map((p) => h('tr', { dataset: { packId: p.pack_id } },
      h('td', { class: 'num', text: p.pack_id }), h('td', { class: 'num', text: `${p.first}..${p.first + p.count - 1}` }),
      h('td', { class: 'num', text: p.count }), h('td', { text: p.host })))));
  parts.push(h('div', { class: 'columns' },
    section(`Traffic (${packCount(res)} packs)`, trafficHost),
    h('div', { class: 'stack' },
      section('Bytes', bytesHost),
      section('Placement', h('div', { class: 'table-wrap short' }, placement)))));

  const select = h('select', { id: 'worker-select' });
  const options = document.createDocumentFragment();
  for (const w of workers) {
    const bad = w.error || w.worker_id === failedId;
    options.append(h('option', { value: w.worker_id, text: `worker ${w.worker_id} · pack ${w.pack_id}${bad ? ' · failed' : ''}` }));
  }
  select.append(options);
  const detail = h('div', { class: 'worker-detail' });
  parts.push(section('Worker output', h('div', { class: 'toolbar' }, h('label', { for: 'worker-select', text: 'worker ' }), select), detail));

  body.replaceChildren(...parts);
  renderMatrix(trafficHost, res);
  renderTotals(bytesHost, res);

  function showWorker(wid) {
    const w = byId.get(wid);
    const out = res.outputs ? res.outputs[wid] : undefined;
    const stream = (label, pid, text, truncated) => [
      h('h3', { text: label }),
      h('pre', { id: pid, class: 'out', text: text || '' }),
      truncated ? h('p', { class: 'note warn', text: `${label} was truncated by the server` }) : null];
    const err = w && w.error ? w.error : (wid === failedId ? failure : null);
    detail.replaceChildren(...[
      err ? h('p', { id: 'worker-error', class: 'failure', text: `${err.kind}: ${err.message}` }) : null,
      w ? h('p', { class: 'muted', text: `pack ${w.pack_id}${w.host ? ` · host ${w.host}` : ''} · `
        + `work ${w.start_us && w.end_us ? formatDuration(w.end_us - w.start_us) : '–'} · `
        + `comm ${formatDuration(w.comm_us || 0)} in ${w.comm_calls || 0} calls` }) : null,
      h('h3', { text: 'output' }),
      h('pre', { id: 'worker-output', class: 'out', text: out === undefined ? '' : JSON.stringify(out, null, 2) }),
      stream('stdout', 'worker-stdout', w && w.stdout, w && w.stdout_truncated),
      stream('stderr', 'worker-stderr', w && w.stderr, w && w.stderr_truncated)].flat().filter(Boolean));
  }

  const timeline = createTimeline(tlHost, res, {
    onSelect(wid) { select.value = String(wid); showWorker(wid); },
  });
  body.timeline = timeline;
  select.addEventListener('change', () => {
    const wid = Number(select.value);
    timeline.select(wid);
    showWorker(wid);
  });
  const initial = failedId != null && byId.has(failedId) ? failedId : (workers[0] ? workers[0].worker_id : null);
  if (initial != null) {
    select.value = String(initial);
    timeline.select(initial);
    showWorker(initial);
  }
}

// ---- view: definitions and hosts ----

function definitionsView(root, live) {
  (async () => {
    try {
      const [defs, health] = await Promise.all([api.listDefinitions(), api.getHealth()]);
      if (!live()) return;
      const defaults = (d) => [
        d.granularity != null ? `granularity ${d.granularity}` : null,
        d.memory_bytes != null ? `memory ${formatBytes(d.memory_bytes)}` : null,
        d.deadline_ms != null ? `deadline ${d.deadline_ms} ms` : null].filter(Boolean).join(' · ') || '–';
      const defRows = [];
      for (const def of defs) {
        def.versions.forEach((v, i) => defRows.push(h('tr', { dataset: { name: def.name, version: v.version } },
          h('td', { text: def.name }),
          h('td', { class: 'num' }, String(v.version), i === def.versions.length - 1 ? h('span', { class: 'tag', text: 'current' }) : null),
          h('td', { class: 'mono', title: v.digest, text: v.digest.slice(0, 12) }),
          h('td', { class: 'num', text: formatBytes(v.size), title: `${v.size} B` }),
          h('td', { class: 'mono', text: formatTime(v.created_us) }),
          h('td', { text: defaults(v.defaults || {}) }))));
      }
      const hostRows = (health.hosts || []).map((x) => h('tr', { dataset: { hostId: x.host_id, state: x.state } },
        h('td', { text: x.name }), h('td', { class: 'mono muted', text: x.host_id }),
        h('td', {}, h('span', { class: `badge ${x.state === 'up' ? 'succeeded' : 'failed'}`, text: x.state })),
        h('td', { class: 'num', text: x.slots }), h('td', { class: 'num', text: x.free_slots })));
      const stat = (k, v) => [h('dt', { text: k }), h('dd', { text: v })];
      root.append(
        h('div', { class: 'toolbar' }, h('h1', { text: 'Definitions' }), h('span', { class: 'muted', text: `${defs.length} definitions` })),
        h('div', { class: 'table-wrap' }, h('table', { id: 'definitions', class: 'grid' },
          heads(['name', 'version', 'digest', 'size', 'deployed', 'defaults']),
          h('tbody', {}, defRows))),
        h('div', { class: 'toolbar' }, h('h1', { text: 'Hosts' }), h('span', { class: 'muted', text: `service ${health.status}` })),
        h('dl', { id: 'cluster-totals', class: 'totals inline', dataset: { queued: health.queued, running: health.running, slots: health.slots, freeSlots: health.free_slots } },
          stat('queued', health.queued), stat('running', health.running), stat('slots', health.slots), stat('free slots', health.free_slots)),
        h('div', { class: 'table-wrap' }, h('table', { id: 'hosts', class: 'grid' },
          heads(['name', 'host id', 'state', 'slots', 'free slots']),
          h('tbody', {}, hostRows))));
    } catch (err) {
      if (live()) fail(err);
    }
    if (live()) setReady(true);
  })();
  return {};
}

start();

// Where a flare's bytes went: the pack-to-pack traffic heat map (the
// diagonal, bytes kept inside a pack through memory, told apart from bytes
// that crossed the broker), the byte totals and the calls per primitive.

import { formatBytes } from '/dashboard/api.js';

// Above this many packs a cell is too small to hold readable text.
const TEXT_MAX_PACKS = 12;

/** Number of packs of a result, from whatever it tells. */
export function packCount(result) {
  let n = 0;
  for (const p of result.placement || []) n = Math.max(n, p.pack_id + 1);
  for (const t of result.traffic || []) n = Math.max(n, t.pack_id + 1, (t.from || []).length);
  if (!n && result.burst_size && result.granularity) n = Math.ceil(result.burst_size / result.granularity);
  return n;
}

/**
 * Colour of a cell: intensity on a log scale, so a pack pair that moved a
 * kilobyte is still visible next to one that moved a gigabyte.
 */
function shade(bytes, max, diagonal) {
  if (!bytes) return '';
  const t = Math.log1p(bytes) / Math.log1p(max);
  const alpha = (0.12 + 0.88 * t).toFixed(3);
  return diagonal ? `rgba(46, 160, 90, ${alpha})` : `rgba(60, 110, 215, ${alpha})`;
}

/** Appends the heat map (or a note why there is none) to `host`. */
export function renderMatrix(host, result) {
  const traffic = result.traffic || [];
  const n = packCount(result);
  if (!traffic.length) {
    const note = document.createElement('p');
    note.id = 'traffic-note';
    note.className = 'note';
    note.textContent = n > 128
      ? `no matrix: more than 128 packs (${n} packs)`
      : 'no matrix: no pack reported traffic (the server leaves it out for more than 128 packs)';
    host.append(note);
    return;
  }

  const byDest = new Map(traffic.map((t) => [t.pack_id, t.from || []]));
  let max = 0;
  for (const from of byDest.values()) for (const b of from) if (b > max) max = b;

  const table = document.createElement('table');
  table.id = 'traffic';
  table.className = n > TEXT_MAX_PACKS ? 'matrix dense' : 'matrix';
  const withText = n <= TEXT_MAX_PACKS;

  const head = table.createTHead().insertRow();
  const corner = document.createElement('th');
  corner.textContent = 'from ↓ to →';
  corner.className = 'corner';
  head.append(corner);
  for (let p = 0; p < n; p++) {
    const th = document.createElement('th');
    th.textContent = String(p);
    th.title = `to pack ${p}`;
    head.append(th);
  }

  const body = table.createTBody();
  for (let q = 0; q < n; q++) {
    const tr = body.insertRow();
    const th = document.createElement('th');
    th.textContent = String(q);
    th.title = `from pack ${q}`;
    tr.append(th);
    for (let p = 0; p < n; p++) {
      const from = byDest.get(p);
      const bytes = from ? Number(from[q] || 0) : 0;
      const td = tr.insertCell();
      td.dataset.from = String(q);
      td.dataset.to = String(p);
      td.dataset.bytes = String(bytes);
      const diagonal = p === q;
      if (diagonal) td.className = 'diag';
      if (!from) td.classList.add('unreported');
      const color = shade(bytes, max, diagonal);
      if (color) td.style.backgroundColor = color;
      if (bytes && Math.log1p(bytes) / Math.log1p(max) > 0.6) td.classList.add('strong');
      td.title = diagonal
        ? `inside pack ${p} (memory): ${formatBytes(bytes)}`
        : `pack ${q} → pack ${p}: ${formatBytes(bytes)}`;
      if (withText) td.textContent = bytes ? formatBytes(bytes) : '·';
    }
  }

  const legend = document.createElement('p');
  legend.className = 'legend';
  for (const [cls, label] of [['swatch remote', 'between packs (broker)'], ['swatch local', 'inside a pack (memory)']]) {
    const sw = document.createElement('span');
    sw.className = cls;
    legend.append(sw, document.createTextNode(` ${label}  `));
  }
  legend.append(document.createTextNode(`· darker = more bytes (log scale), max ${formatBytes(max)}`));

  const wrap = document.createElement('div');
  wrap.className = 'matrix-wrap';
  wrap.append(table);
  host.append(wrap, legend);
}

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text != null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

/** Appends the byte totals (`#totals`) and calls per primitive (`#calls`). */
export function renderTotals(host, result) {
  const b = result.bytes || {};
  const dl = el('dl', null, 'totals');
  dl.id = 'totals';
  const rows = [['local', 'inside packs (memory)'], ['remote', 'between packs (broker)'],
    ['framing', 'framing'], ['written', 'written to the broker']];
  for (const [key, label] of rows) {
    const n = b[key] ?? 0;
    dl.dataset[key] = String(n);
    const dd = el('dd', formatBytes(n));
    dd.title = `${n} B`;
    dl.append(el('dt', label), dd);
  }
  host.append(dl);

  const calls = Object.entries(result.calls || {}).sort((x, y) => y[1] - x[1]);
  if (!calls.length) {
    host.append(el('p', 'no communication calls', 'note'));
    return;
  }
  const table = el('table', null, 'grid compact');
  table.id = 'calls';
  const head = table.createTHead().insertRow();
  head.append(el('th', 'primitive'), el('th', 'calls', 'num'));
  const body = table.createTBody();
  for (const [primitive, n] of calls) {
    const tr = body.insertRow();
    tr.dataset.primitive = primitive;
    tr.append(el('td', primitive), el('td', Number(n).toLocaleString(), 'num'));
  }
  host.append(table);
}

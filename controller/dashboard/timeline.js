// The worker timeline: a canvas Gantt chart of every worker's phases,
// grouped by pack. Only the rows in view are drawn, so flares of tens of
// thousands of workers scroll smoothly; a spacer gives the scrollbar the
// full height while the canvas stays pinned to the viewport.

const AXIS_H = 22;
const GUTTER = 64;
const PACK_H = 15;
const VIEW_MAX_H = 560;

const COLORS = {
  setup: '#b4bbc6',
  gate: '#dde1e7',
  compute: '#4c7dd9',
  comm: '#f0a030',
  failed: '#d6333a',
  packBg: '#f1f3f6',
  packText: '#4a5260',
  grid: '#e3e6eb',
  axis: '#5b6270',
  selected: 'rgba(76, 125, 217, 0.16)',
  hover: 'rgba(0, 0, 0, 0.05)',
};

const LEGEND = [
  ['setting up', COLORS.setup],
  ['waiting at start gate', COLORS.gate],
  ['computing', COLORS.compute],
  ['in communication', COLORS.comm],
  ['failed', COLORS.failed],
];

/** The key to the chart's colours, as a row of swatches. */
export function createLegend() {
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const [label, color] of LEGEND) {
    const item = document.createElement('span');
    item.className = 'item';
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.backgroundColor = color;
    item.append(swatch, label);
    legend.append(item);
  }
  const hint = document.createElement('span');
  hint.className = 'muted';
  hint.textContent = 'hover a row for details, click to pick its output';
  legend.append(hint);
  return legend;
}

function rowHeightFor(workers) {
  if (workers > 2000) return 6;
  if (workers > 300) return 9;
  return 14;
}

/** "Nice" axis step in µs so that ticks land about `px` apart. */
function tickStep(rangeUs, widthPx, px = 110) {
  const raw = rangeUs / Math.max(1, widthPx / px);
  const pow = 10 ** Math.floor(Math.log10(raw || 1));
  for (const f of [1, 2, 5, 10]) if (f * pow >= raw) return f * pow;
  return 10 * pow;
}

function ms(us) {
  const v = us / 1000;
  return Math.abs(v) < 10 ? v.toFixed(2) : v < 1000 ? v.toFixed(1) : v.toFixed(0);
}

/**
 * Builds the chart inside `host` for a ResultDoc. `onSelect(workerId)` is
 * called on a click. Returns {select(id), destroy()}.
 */
export function createTimeline(host, result, { onSelect } = {}) {
  const workers = result.workers || [];
  const failure = result.failure || null;
  const failedId = failure && failure.worker_id != null ? failure.worker_id : null;
  const hostOf = new Map((result.placement || []).map((p) => [p.pack_id, p.host]));

  // Flatten packs and workers into rows with precomputed tops, so a scroll
  // position maps to a row by binary search instead of a walk.
  const rowH = rowHeightFor(workers.length);
  const rows = [];
  const tops = [];
  let y = 0;
  let lastPack = null;
  const rowOfWorker = new Map();
  const sorted = [...workers].sort((a, b) => a.pack_id - b.pack_id || a.worker_id - b.worker_id);
  for (const w of sorted) {
    if (w.pack_id !== lastPack) {
      lastPack = w.pack_id;
      rows.push({ pack: w.pack_id, host: w.host || hostOf.get(w.pack_id) || '?' });
      tops.push(y);
      y += PACK_H;
    }
    rowOfWorker.set(w.worker_id, rows.length);
    rows.push({ w });
    tops.push(y);
    y += rowH;
  }
  const contentH = y;
  const packs = new Set(sorted.map((w) => w.pack_id)).size;

  // The time window: earliest known phase to latest end (or failure).
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const w of workers) {
    const first = w.placed_us || w.instantiated_us || w.start_us || w.end_us;
    if (first) t0 = Math.min(t0, first);
    const last = w.end_us || w.start_us || w.instantiated_us || w.placed_us;
    if (last) t1 = Math.max(t1, last);
  }
  if (failure && failure.at_us) {
    t0 = Math.min(t0, failure.at_us);
    t1 = Math.max(t1, failure.at_us);
  }
  if (!Number.isFinite(t0)) { t0 = 0; t1 = 1; }
  if (t1 <= t0) t1 = t0 + 1;

  const scroll = document.createElement('div');
  scroll.className = 'timeline-scroll';
  const spacer = document.createElement('div');
  spacer.className = 'timeline-spacer';
  const canvas = document.createElement('canvas');
  canvas.id = 'timeline';
  canvas.dataset.workers = String(workers.length);
  canvas.dataset.packs = String(packs);
  if (failedId != null) canvas.dataset.failedWorker = String(failedId);
  const tip = document.createElement('div');
  tip.className = 'timeline-tip';
  tip.hidden = true;
  spacer.append(canvas);
  scroll.append(spacer);
  host.append(scroll, tip);

  const viewH = Math.min(VIEW_MAX_H, AXIS_H + contentH);
  scroll.style.height = `${viewH}px`;
  spacer.style.height = `${AXIS_H + contentH}px`;

  let cssW = 0;
  let selected = failedId != null ? failedId : (workers[0] ? workers[0].worker_id : null);
  let hoverRow = -1;
  let frame = 0;

  const ctx = canvas.getContext('2d');

  function layout() {
    cssW = scroll.clientWidth;
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${cssW}px`;
    canvas.style.height = `${viewH}px`;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(viewH * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  const plotW = () => Math.max(10, cssW - GUTTER - 8);
  const xOf = (us) => GUTTER + ((us - t0) / (t1 - t0)) * plotW();
  const usOf = (x) => t0 + ((x - GUTTER) / plotW()) * (t1 - t0);

  function firstRowAt(contentY) {
    let lo = 0;
    let hi = tops.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (tops[mid] <= contentY) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  function drawWorker(w, top, h) {
    const p = w.placed_us;
    const i = w.instantiated_us;
    const s = w.start_us;
    const e = w.end_us || (s ? t1 : 0);
    const bar = (a, b, color) => {
      const x = xOf(a);
      ctx.fillStyle = color;
      ctx.fillRect(x, top, Math.max(1, xOf(b) - x), h);
    };
    if (p && i && i > p) bar(p, i, COLORS.setup);
    if (i && s && s > i) bar(i, s, COLORS.gate);
    if (s && e) bar(s, e, COLORS.compute);
    if (s && w.comm_spans && w.comm_spans.length) {
      // Spans closer than a pixel are merged: thousands of sub-pixel
      // rectangles would cost time and look the same.
      ctx.fillStyle = COLORS.comm;
      let runA = -1;
      let runB = -1;
      for (const [b, en] of w.comm_spans) {
        const xa = xOf(s + b);
        const xb = xOf(s + en);
        if (runA >= 0 && xa <= runB + 1) {
          runB = Math.max(runB, xb);
          continue;
        }
        if (runA >= 0) ctx.fillRect(runA, top, Math.max(1, runB - runA), h);
        runA = xa;
        runB = xb;
      }
      if (runA >= 0) ctx.fillRect(runA, top, Math.max(1, runB - runA), h);
    }
    const isFailed = w.worker_id === failedId || w.error;
    if (isFailed) {
      const first = p || i || s || e;
      const last = e || first;
      if (first) {
        ctx.strokeStyle = COLORS.failed;
        ctx.lineWidth = 1.5;
        ctx.strokeRect(xOf(first) + 0.5, top + 0.5, Math.max(2, xOf(last) - xOf(first) - 1), Math.max(1, h - 1));
        ctx.fillStyle = COLORS.failed;
        ctx.fillRect(xOf(last) - 2, top, 3, h);
      }
    }
    if (w.worker_id === failedId && failure.at_us) {
      const x = xOf(failure.at_us);
      ctx.fillStyle = COLORS.failed;
      ctx.beginPath();
      ctx.moveTo(x - 4, top - 3);
      ctx.lineTo(x + 4, top - 3);
      ctx.lineTo(x, top + Math.min(h, 6));
      ctx.closePath();
      ctx.fill();
    }
  }

  function drawAxis(step) {
    // Labels carry as many decimals as the step needs, and no more.
    const decimals = Math.max(0, Math.min(3, -Math.floor(Math.log10(step / 1000) + 1e-9)));
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, cssW, AXIS_H);
    ctx.strokeStyle = COLORS.axis;
    ctx.beginPath();
    ctx.moveTo(GUTTER, AXIS_H - 0.5);
    ctx.lineTo(GUTTER + plotW(), AXIS_H - 0.5);
    ctx.stroke();
    ctx.fillStyle = COLORS.axis;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'left';
    ctx.fillText('ms', 8, AXIS_H / 2);
    ctx.textAlign = 'center';
    for (let t = 0; t <= t1 - t0; t += step) {
      const x = xOf(t0 + t);
      ctx.fillRect(Math.round(x), AXIS_H - 5, 1, 5);
      ctx.fillText((t / 1000).toFixed(decimals), x, AXIS_H / 2 - 1);
    }
  }

  function draw() {
    frame = 0;
    const started = performance.now();
    ctx.clearRect(0, 0, cssW, viewH);
    const scrollTop = scroll.scrollTop;
    const step = tickStep(t1 - t0, plotW());

    // Vertical grid first, so bars sit on top of it.
    ctx.fillStyle = COLORS.grid;
    for (let t = 0; t <= t1 - t0; t += step) ctx.fillRect(Math.round(xOf(t0 + t)), AXIS_H, 1, viewH - AXIS_H);

    ctx.save();
    ctx.beginPath();
    ctx.rect(0, AXIS_H, cssW, viewH - AXIS_H);
    ctx.clip();
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const bottom = scrollTop + viewH - AXIS_H;
    for (let r = firstRowAt(scrollTop); r < rows.length && tops[r] < bottom; r++) {
      const row = rows[r];
      const top = AXIS_H + tops[r] - scrollTop;
      if (row.w === undefined) {
        ctx.fillStyle = COLORS.packBg;
        ctx.fillRect(0, top, cssW, PACK_H);
        ctx.fillStyle = COLORS.packText;
        ctx.textAlign = 'left';
        ctx.fillText(`pack ${row.pack} · host ${row.host}`, 6, top + PACK_H / 2);
        continue;
      }
      if (row.w.worker_id === selected) {
        ctx.fillStyle = COLORS.selected;
        ctx.fillRect(0, top, cssW, rowH);
      } else if (r === hoverRow) {
        ctx.fillStyle = COLORS.hover;
        ctx.fillRect(0, top, cssW, rowH);
      }
      if (rowH >= 9) {
        ctx.fillStyle = row.w.error || row.w.worker_id === failedId ? COLORS.failed : COLORS.packText;
        ctx.textAlign = 'right';
        ctx.fillText(String(row.w.worker_id), GUTTER - 6, top + rowH / 2);
      }
      const pad = rowH >= 9 ? 2 : 1;
      drawWorker(row.w, top + pad, rowH - 2 * pad);
    }
    if (failure && failure.at_us) {
      // One line through every row: what the others were doing at that moment.
      ctx.fillStyle = 'rgba(214, 51, 58, 0.45)';
      ctx.fillRect(Math.round(xOf(failure.at_us)), AXIS_H, 1, viewH - AXIS_H);
    }
    ctx.restore();
    drawAxis(step);
    canvas.dataset.drawMs = (performance.now() - started).toFixed(2);
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function rowAtEvent(ev) {
    const rect = canvas.getBoundingClientRect();
    const cy = ev.clientY - rect.top;
    if (cy < AXIS_H) return -1;
    const contentY = cy - AXIS_H + scroll.scrollTop;
    if (contentY >= contentH) return -1;
    return firstRowAt(contentY);
  }

  function showTip(ev, w) {
    const rel = (us) => (us ? `${ms(us - t0)} ms` : '–');
    const lines = [
      `worker ${w.worker_id} · pack ${w.pack_id}${w.host ? ` · ${w.host}` : ''}`,
      `placed ${rel(w.placed_us)} · instantiated ${rel(w.instantiated_us)}`,
      `started ${rel(w.start_us)} · ended ${rel(w.end_us)}`,
      `setup ${w.placed_us && w.instantiated_us ? ms(w.instantiated_us - w.placed_us) : '–'} ms · `
        + `gate ${w.instantiated_us && w.start_us ? ms(w.start_us - w.instantiated_us) : '–'} ms · `
        + `work ${w.start_us && w.end_us ? ms(w.end_us - w.start_us) : '–'} ms`,
      `comm ${ms(w.comm_us || 0)} ms in ${w.comm_calls || 0} calls`,
    ];
    if (w.error) lines.push(`error: ${w.error.kind}: ${w.error.message}`);
    else if (w.worker_id === failedId) lines.push(`failed: ${failure.kind}: ${failure.message}`);
    tip.textContent = lines.join('\n');
    tip.classList.toggle('failed', Boolean(w.error || w.worker_id === failedId));
    tip.hidden = false;
    const x = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    const yy = ev.clientY + 16 + tip.offsetHeight > window.innerHeight
      ? ev.clientY - tip.offsetHeight - 8 : ev.clientY + 16;
    tip.style.left = `${x}px`;
    tip.style.top = `${yy}px`;
  }

  canvas.addEventListener('mousemove', (ev) => {
    const r = rowAtEvent(ev);
    const row = rows[r];
    if (r !== hoverRow) { hoverRow = r; schedule(); }
    if (row && row.w) showTip(ev, row.w);
    else tip.hidden = true;
    canvas.classList.toggle('pointer', Boolean(row && row.w));
  });
  canvas.addEventListener('mouseleave', () => {
    hoverRow = -1;
    tip.hidden = true;
    schedule();
  });
  canvas.addEventListener('click', (ev) => {
    const row = rows[rowAtEvent(ev)];
    if (!row || !row.w) return;
    selected = row.w.worker_id;
    schedule();
    if (onSelect) onSelect(selected);
  });
  scroll.addEventListener('scroll', () => { tip.hidden = true; schedule(); }, { passive: true });

  const resize = new ResizeObserver(() => {
    if (scroll.clientWidth !== cssW) { layout(); schedule(); }
  });
  resize.observe(scroll);
  // A dpr change (zoom, moving to another screen) needs a sharper buffer.
  let dprQuery = null;
  function watchDpr() {
    dprQuery = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    dprQuery.addEventListener('change', onDpr, { once: true });
  }
  function onDpr() { layout(); schedule(); watchDpr(); }
  watchDpr();

  layout();
  draw();

  return {
    select(id) {
      selected = id;
      const r = rowOfWorker.get(id);
      if (r !== undefined) {
        const top = tops[r];
        const visible = viewH - AXIS_H;
        if (top < scroll.scrollTop || top + rowH > scroll.scrollTop + visible) {
          scroll.scrollTop = Math.max(0, top - visible / 2);
        }
      }
      schedule();
    },
    destroy() {
      resize.disconnect();
      if (dprQuery) dprQuery.removeEventListener('change', onDpr);
      if (frame) cancelAnimationFrame(frame);
      tip.remove();
    },
  };
}

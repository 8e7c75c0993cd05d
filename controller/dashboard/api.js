// The dashboard's only way to the server: authenticated fetch helpers for
// the /v1 API, the server-sent-events reader for live flares, and the
// formatters for the API's units (bytes, microseconds since the epoch).

const TOKEN_KEY = 'burst-token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer other than 2xx; `status` 0 means the server was not reached. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function request(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: headers(init.headers) });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', `cannot reach the server: ${err.message}`);
  }
  if (!response.ok) {
    // The API promises {code, message}; a proxy in between may not.
    let code = `http_${response.status}`;
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.code) code = body.code;
      if (body && body.message) message = body.message;
    } catch { /* keep the status line */ }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

async function getJson(path) {
  const response = await request(path, { headers: { Accept: 'application/json' } });
  return { body: await response.json(), response };
}

/** The `rel="next"` target of a Link header, or null. */
function nextLink(header) {
  if (!header) return null;
  for (const part of header.split(',')) {
    const m = part.match(/<([^>]*)>\s*;.*rel="?next"?/);
    if (m) return m[1];
  }
  return null;
}

const MAX_PAGES = 10;

/** Every flare (up to ten pages), oldest first as the server sends them. */
export async function listFlares() {
  let path = '/v1/flares?limit=1000';
  const all = [];
  for (let page = 0; path && page < MAX_PAGES; page++) {
    const { body, response } = await getJson(path);
    all.push(...body);
    const next = nextLink(response.headers.get('Link'));
    // Only follow links to our own origin; the CSP would block others anyway.
    path = next && next.startsWith('/') ? next : null;
  }
  return all;
}

export async function getFlare(id) {
  return (await getJson(`/v1/flares/${encodeURIComponent(id)}`)).body;
}

export async function getResults(id) {
  return (await getJson(`/v1/flares/${encodeURIComponent(id)}/results`)).body;
}

export async function listDefinitions() {
  return (await getJson('/v1/definitions?limit=1000')).body;
}

export async function getHealth() {
  return (await getJson('/health')).body;
}

/**
 * Feeds text chunks of an event stream and calls `onEvent(type, data)` per
 * complete event. Lines are split as the SSE spec says (CR, LF or CRLF);
 * a trailing CR is held back because its LF may be in the next chunk.
 */
export function sseParser(onEvent) {
  let buffer = '';
  let type = '';
  let data = [];
  function line(text) {
    if (text === '') {
      if (data.length) onEvent(type || 'message', data.join('\n'));
      type = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return; // keep-alive comment
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return function feed(chunk) {
    buffer += chunk;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = re.exec(buffer))) {
      if (m[0] === '\r' && m.index === buffer.length - 1) break;
      line(buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    buffer = buffer.slice(start);
  };
}

const RECONNECT_MS = 1000;
const MAX_BACKOFF_MS = 5000;

/**
 * Follows `/v1/flares/events` until `stop()` is called, reconnecting after
 * the server ends a stream (1 s) or after an error (backing off to 5 s).
 * Handlers: onFlare(doc), onResync(), onOpen() after every (re)connect,
 * onClose() when a stream ends, onUnauthorized(err) which also ends the
 * follow.
 */
export function followFlares({ onFlare, onResync, onOpen, onClose, onUnauthorized }) {
  const controller = new AbortController();
  let stopped = false;
  let backoff = RECONNECT_MS;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function once() {
    const response = await request('/v1/flares/events', {
      headers: { Accept: 'text/event-stream' },
      signal: controller.signal,
    });
    backoff = RECONNECT_MS;
    if (onOpen) onOpen();
    const feed = sseParser((type, data) => {
      if (type === 'flare') {
        let doc;
        try { doc = JSON.parse(data); } catch { return; }
        onFlare(doc);
      } else if (type === 'resync' && onResync) {
        onResync();
      }
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
    feed(decoder.decode() + '\n');
  }

  (async () => {
    while (!stopped) {
      let wait = RECONNECT_MS;
      try {
        await once();
      } catch (err) {
        if (stopped || err.name === 'AbortError') return;
        if (err instanceof ApiError && err.status === 401) {
          stopped = true;
          if (onUnauthorized) onUnauthorized(err);
          return;
        }
        wait = backoff;
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
      if (onClose) onClose();
      if (!stopped) await sleep(wait);
    }
  })();

  return function stop() {
    stopped = true;
    controller.abort();
  };
}

// ---- units ----

const UNITS = ['B', 'KiB', 'MiB', 'GiB'];

export function formatBytes(n) {
  if (n == null) return '–';
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

const pad = (n) => String(n).padStart(2, '0');

/** Local wall-clock time of an epoch-µs instant. */
export function formatTime(us) {
  if (!us) return '–';
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A span of microseconds, in the coarsest unit that still reads well. */
export function formatDuration(us) {
  if (us == null || !Number.isFinite(us)) return '–';
  const ms = us / 1000;
  if (ms < 1) return `${Math.round(us)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

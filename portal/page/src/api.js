// The portal's API, same origin, authenticated by the HttpOnly session cookie.

export class AuthError extends Error {}

export async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) throw new AuthError("session");
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

export async function putJSON(path, body) {
  const response = await fetch(path, {
    method: "PUT",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-Requested-With": "linky-portal" },
    body: JSON.stringify(body),
  });
  if (response.status === 401) throw new AuthError("session");
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

export const pdlPath = (pdl, what) => `/api/pdl/${encodeURIComponent(pdl)}/${what}`;

/**
 * Server-Sent Events with reconnection and back-off (1 s, 2 s, 4 s ... 30 s), reported to
 * ``onState(state, seconds)``: "open", "retry", "stale".
 */
export class EventStream {
  constructor(url, handlers, onState) {
    this.url = url;
    this.handlers = handlers;
    this.onState = onState;
    this.delay = 1;
    this.source = null;
    this.timer = null;
    this.closed = false;
  }

  start() {
    this.closed = false;
    const source = new EventSource(this.url, { withCredentials: true });
    this.source = source;
    source.onopen = () => {
      this.delay = 1;
      this.onState("open");
    };
    for (const [name, handler] of Object.entries(this.handlers)) {
      source.addEventListener(name, (event) => {
        let data = null;
        try {
          data = event.data ? JSON.parse(event.data) : null;
        } catch (err) {
          console.warn("événement illisible", name, err);
          return;
        }
        handler(data);
      });
    }
    source.onerror = () => {
      source.close();
      if (this.closed) return;
      const wait = this.delay;
      this.delay = Math.min(30, this.delay * 2);
      this.onState("retry", wait);
      this.timer = window.setTimeout(() => this.start(), wait * 1000);
    };
  }

  stop() {
    this.closed = true;
    if (this.timer) window.clearTimeout(this.timer);
    if (this.source) this.source.close();
  }
}

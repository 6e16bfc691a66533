// ssehub console: subscribe with the browser's own EventSource, watch events
// arrive, publish. Plain JavaScript, no build step, no library.
//
// Every URL is relative to the page ("events"), so the console works at any
// base path. Event data is only ever set as textContent, never as HTML.
// A binary event (docs/BINARY.md) shows its media type and size, decoded by
// ssehubBinary from binary.js, and an image preview when it is an image.
(() => {
  "use strict";

  const MAX_ROWS = 500; // log rows kept; older ones are dropped
  const WINDOW = 60; // seconds shown in the rate chart
  const GAP_TYPE = "ssehub-gap"; // the hub's named event for a replay gap
  const AUTH_TYPE = "ssehub-auth"; // the hub's last event before it ends a stream whose token expired
  const STATE_NAMES = ["CONNECTING", "OPEN", "CLOSED"];
  // The cookie the hub reads a subscriber's token from (its --token-cookie),
  // which the server writes into the page.
  const TOKEN_COOKIE =
    document.querySelector('meta[name="ssehub-token-cookie"]')?.content || "ssehub_token";
  // What a bearer token is made of (RFC 6750's b64token): a JWT is letters,
  // digits, "-", "_" and dots. All of it is safe in a cookie value as it is.
  const TOKEN_CHARS = /^[A-Za-z0-9._~+\/-]+=*$/;

  const byTestID = (id) => document.querySelector(`[data-testid="${id}"]`);
  const ui = {
    state: byTestID("state"),
    subscribeForm: byTestID("subscribe-form"),
    topics: byTestID("topics"),
    types: byTestID("types"),
    subToken: byTestID("subscribe-token"),
    subscribeError: byTestID("subscribe-error"),
    connect: byTestID("connect"),
    disconnect: byTestID("disconnect"),
    streamURL: byTestID("stream-url"),
    publishForm: byTestID("publish-form"),
    pubTopic: byTestID("publish-topic"),
    pubType: byTestID("publish-type"),
    pubID: byTestID("publish-id"),
    pubData: byTestID("publish-data"),
    pubPrivate: byTestID("publish-private"),
    pubToken: byTestID("publish-token"),
    pubSubmit: byTestID("publish-submit"),
    pubResult: byTestID("publish-result"),
    rateNow: byTestID("rate-now"),
    chart: byTestID("rate-chart"),
    count: byTestID("event-count"),
    clear: byTestID("clear-log"),
    log: byTestID("log"),
  };

  // splitList splits "a b, c" into ["a", "b", "c"].
  const splitList = (s) => s.split(/[\s,]+/).filter(Boolean);

  const make = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // ---- Subscription ------------------------------------------------------

  let source = null; // the EventSource; null when disconnected by the user
  let listening = new Set(); // event types source has a listener for
  let shownState = -1; // the readyState the badge shows

  function connect() {
    const topics = splitList(ui.topics.value);
    if (topics.length === 0) {
      showSubscribeError("Enter at least one topic, such as chat/**.");
      ui.topics.focus();
      return;
    }
    const token = ui.subToken.value.trim();
    if (token && !TOKEN_CHARS.test(token)) {
      showSubscribeError("That is not a token: a token is letters, digits, dots, -, _, ~, + and /.");
      ui.subToken.focus();
      return;
    }
    showSubscribeError("");
    if (source) source.close();
    setTokenCookie(token);
    const query = new URLSearchParams();
    for (const t of topics) query.append("topic", t);
    const readable = "events?" + topics.map((t) => "topic=" + t).join("&");
    source = new EventSource("events?" + query.toString());
    source.addEventListener("open", updateState);
    source.addEventListener("error", updateState);
    source.addEventListener(AUTH_TYPE, onAuth);
    listening = new Set();
    syncTypes();
    ui.streamURL.textContent = "GET " + readable;
    ui.streamURL.hidden = false;
    addStatus("connecting to " + readable + (token ? " with a token" : ""));
    shownState = -1; // a new source: its first state is not a change
    updateState();
  }

  function disconnect() {
    if (!source) return;
    source.close();
    source = null;
    setTokenCookie("");
    addStatus("disconnected");
    updateState();
  }

  // setTokenCookie puts token in the cookie the hub takes a subscriber's
  // token from, or removes the cookie when token is "". An EventSource
  // cannot set an Authorization header, and a token in the URL
  // (access_token) would be written into access logs, so the token goes in
  // a cookie. The cookie is scoped to the events URL, so that nothing else
  // on the origin carries it, never sent from another site, and lasts no
  // longer than the browser session; the browser sends it with each
  // reconnection too. The hub never takes a publish token from a cookie.
  function setTokenCookie(token) {
    const path = new URL("events", document.baseURI).pathname;
    let attrs = `; Path=${path}; SameSite=Strict`;
    if (location.protocol === "https:") attrs += "; Secure";
    document.cookie = token ? `${TOKEN_COOKIE}=${token}${attrs}` : `${TOKEN_COOKIE}=${attrs}; Max-Age=0`;
  }

  // syncTypes makes the source listen for exactly message, the gap event and
  // the types in the field. EventSource has no catch-all: each named type
  // needs its own listener.
  function syncTypes() {
    if (!source) return;
    const want = new Set(["message", GAP_TYPE, ...splitList(ui.types.value)]);
    for (const t of listening) {
      if (!want.has(t)) {
        source.removeEventListener(t, onEvent);
        listening.delete(t);
      }
    }
    for (const t of want) {
      if (!listening.has(t)) {
        source.addEventListener(t, onEvent);
        listening.add(t);
      }
    }
  }

  // updateState shows the source's readyState. It runs on open and error,
  // and on a timer too, because nothing else reports every change.
  function updateState() {
    const s = source ? source.readyState : EventSource.CLOSED;
    if (s === shownState) return;
    const previous = shownState;
    shownState = s;
    const name = STATE_NAMES[s];
    ui.state.textContent = name;
    ui.state.dataset.state = name.toLowerCase();
    ui.disconnect.disabled = !source || s === EventSource.CLOSED;
    if (!source || previous === -1) return;
    if (s === EventSource.OPEN) {
      addStatus("open");
    } else if (s === EventSource.CONNECTING) {
      addStatus("connection lost; reconnecting");
    } else {
      addStatus("the hub refused the stream (an error status or the wrong Content-Type); not retrying");
    }
  }

  function showSubscribeError(text) {
    ui.subscribeError.textContent = text;
    ui.subscribeError.hidden = text === "";
  }

  function onEvent(e) {
    // A named "error" or "open" listener also gets the connection's own
    // events, which are not messages.
    if (!(e instanceof MessageEvent) || e.target !== source) return;
    addEvent(e.type, e.lastEventId, e.data);
  }

  // onAuth reports that the hub is ending the stream because its token
  // expired. The browser reconnects after the retry delay with the cookie
  // it has then: a page that refreshes the cookie now resumes where it was.
  function onAuth(e) {
    if (e.target !== source) return;
    addStatus("the hub ended the stream: its token expired; reconnecting with the current cookie");
  }

  // ---- Event log ----------------------------------------------------------

  let received = 0; // events received since the last Clear
  let shown = 0; // event rows in the log

  const pad = (n, w) => String(n).padStart(w, "0");
  const clock = (d) =>
    `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(d.getMilliseconds(), 3)}`;

  function addEvent(type, id, data) {
    const gap = type === GAP_TYPE;
    const binary = !gap && data.startsWith(BINARY_PREFIX);
    const li = make("li", gap ? "gap" : binary ? "binary" : "");
    li.dataset.testid = "event-row";
    li.dataset.kind = gap ? "gap" : binary ? "binary" : "event";
    if (gap) li.title = "Gap: the hub no longer had every event missed while disconnected.";
    for (const [name, text] of [["time", clock(new Date())], ["type", type], ["id", id], ["data", binary ? "" : data]]) {
      const cell = make("span", name, text);
      cell.dataset.testid = "event-" + name;
      li.append(cell);
    }
    if (binary) showBinary(li, li.lastElementChild, data);
    received++;
    shown++;
    prepend(li);
    countEvent();
  }

  const BINARY_PREFIX = "ssehub-binary ";
  const previews = new Map(); // row → the Blob URL of its image preview

  // showBinary fills cell, the data cell of row li, for a binary event:
  // its media type and size from the first line, then, once decoded, an
  // image preview when it is an image. The base64 is never shown.
  async function showBinary(li, cell, data) {
    const [, type = "?", , size = "?"] = data.slice(0, data.indexOf("\n")).split(" ");
    const summary = make("span", "binary-summary", `${type} · ${Number(size).toLocaleString("en")} bytes`);
    summary.dataset.testid = "event-binary";
    cell.append(summary);
    let payload;
    try {
      payload = await ssehubBinary(data);
    } catch (err) {
      summary.textContent += ` · not decoded: ${err.message}`;
      li.dataset.binary = "malformed";
      return;
    }
    li.dataset.binary = "decoded";
    if (!type.startsWith("image/") || !li.isConnected) return;
    const url = URL.createObjectURL(new Blob([payload.bytes], { type: payload.type }));
    previews.set(li, url);
    const img = make("img", "preview");
    img.dataset.testid = "event-preview";
    img.alt = `${type} image, event ${li.querySelector(".id").textContent || "without an ID"}`;
    img.src = url;
    cell.append(img);
  }

  // dropRow removes a log row, and frees its preview's Blob URL.
  function dropRow(li) {
    const url = previews.get(li);
    if (url) {
      URL.revokeObjectURL(url);
      previews.delete(li);
    }
    li.remove();
  }

  function addStatus(text) {
    const li = make("li", "status");
    li.dataset.testid = "status-row";
    li.append(make("span", "time", clock(new Date())), make("span", "msg", text));
    prepend(li);
  }

  function prepend(li) {
    ui.log.prepend(li);
    while (ui.log.childElementCount > MAX_ROWS) {
      if (ui.log.lastElementChild.dataset.testid === "event-row") shown--;
      dropRow(ui.log.lastElementChild);
    }
    ui.count.textContent = shown === received ? String(received) : `${shown} of ${received}`;
  }

  ui.clear.addEventListener("click", () => {
    for (const li of [...ui.log.children]) dropRow(li);
    received = 0;
    shown = 0;
    ui.count.textContent = "0";
  });

  // ---- Rate chart ---------------------------------------------------------

  const buckets = new Array(WINDOW).fill(0); // events per second, oldest first
  let bucketSecond = Math.floor(Date.now() / 1000); // the second of the last bucket
  let drawPending = false;

  // advance moves the buckets to the current second.
  function advance() {
    const now = Math.floor(Date.now() / 1000);
    const n = Math.min(now - bucketSecond, WINDOW);
    for (let i = 0; i < n; i++) {
      buckets.shift();
      buckets.push(0);
    }
    bucketSecond = now;
  }

  function countEvent() {
    advance();
    buckets[WINDOW - 1]++;
    if (!drawPending) {
      drawPending = true;
      requestAnimationFrame(draw);
    }
  }

  // niceCeil rounds up to 1, 2 or 5 times a power of ten.
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function draw() {
    drawPending = false;
    advance();
    const total = buckets.reduce((a, b) => a + b, 0);
    const peak = Math.max(...buckets);
    const last = buckets[WINDOW - 2]; // the last whole second
    ui.rateNow.textContent = `${last}/s · peak ${peak}/s`;
    ui.chart.setAttribute("aria-label",
      total === 0 ? "No events in the last 60 seconds"
        : `${total} events in the last 60 seconds, at most ${peak} in one second`);

    const c = ui.chart;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return;
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(document.documentElement);
    const color = (name) => style.getPropertyValue(name).trim();

    const top = 14; // room for the scale label
    const plot = h - top - 1;
    const scale = niceCeil(Math.max(peak, 1));
    g.strokeStyle = color("--grid");
    g.lineWidth = 1;
    for (const y of [top + 0.5, top + Math.round(plot / 2) + 0.5, h - 0.5]) {
      g.beginPath();
      g.moveTo(0, y);
      g.lineTo(w, y);
      g.stroke();
    }
    g.fillStyle = color("--muted");
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "top";
    g.fillText(`${scale}/s`, 0, 0);

    const slot = w / WINDOW;
    const bar = Math.max(1, slot - Math.min(2, slot * 0.25));
    g.fillStyle = color("--accent");
    for (let i = 0; i < WINDOW; i++) {
      if (buckets[i] === 0) continue;
      const bh = Math.max(1, (buckets[i] / scale) * plot);
      g.globalAlpha = i === WINDOW - 1 ? 0.5 : 1; // the current second is not over
      g.fillRect(i * slot, h - 1 - bh, bar, bh);
    }
    g.globalAlpha = 1;
  }

  window.addEventListener("resize", draw);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);

  // ---- Publish ------------------------------------------------------------

  function showResult(status, ...parts) {
    ui.pubResult.dataset.status = status;
    ui.pubResult.replaceChildren(...parts);
    ui.pubResult.hidden = false;
  }

  // problemParts renders an error answer: an RFC 9457 problem+json body
  // (title and detail) when there is one, else the status and the text.
  function problemParts(res, text) {
    let title = `${res.status} ${res.statusText}`.trim();
    let detail = text.trim().slice(0, 300);
    if ((res.headers.get("Content-Type") || "").includes("json")) {
      try {
        const p = JSON.parse(text);
        if (p && typeof p === "object") {
          if (typeof p.title === "string" && p.title) title = p.title;
          detail = typeof p.detail === "string" ? p.detail : "";
        }
      } catch (_) {
        // not JSON after all: show the text
      }
    }
    const t = make("strong", "", title);
    t.dataset.testid = "publish-error-title";
    const d = make("span", "", detail);
    d.dataset.testid = "publish-error-detail";
    return detail ? [t, ": ", d] : [t];
  }

  async function publish() {
    const body = new URLSearchParams();
    for (const t of splitList(ui.pubTopic.value)) body.append("topic", t);
    if (ui.pubType.value.trim()) body.append("type", ui.pubType.value.trim());
    if (ui.pubID.value.trim()) body.append("id", ui.pubID.value.trim());
    body.append("data", ui.pubData.value);
    if (ui.pubPrivate.checked) body.append("private", "on");

    ui.pubSubmit.disabled = true;
    showResult("pending", "Publishing…");
    try {
      const headers = { Accept: "text/plain, application/problem+json" };
      // A hub with keys takes a publish token only from this header, never
      // from a cookie (see docs/SECURITY.md).
      const token = ui.pubToken.value.trim();
      if (token) headers.Authorization = "Bearer " + token;
      const res = await fetch("events", {
        method: "POST",
        body, // sent as application/x-www-form-urlencoded
        headers,
        cache: "no-store",
      });
      const text = await res.text();
      if (res.ok) {
        const id = make("code", "", text.trim());
        id.dataset.testid = "publish-event-id";
        showResult("ok", "Published, ID ", id);
      } else {
        showResult("error", ...problemParts(res, text));
      }
    } catch (err) {
      showResult("error", make("strong", "", "Network error"), ": " + err.message);
    } finally {
      ui.pubSubmit.disabled = false;
    }
  }

  // ---- Wiring -------------------------------------------------------------

  ui.subscribeForm.addEventListener("submit", (e) => {
    e.preventDefault();
    connect();
  });
  ui.disconnect.addEventListener("click", disconnect);
  ui.types.addEventListener("change", syncTypes);
  ui.publishForm.addEventListener("submit", (e) => {
    e.preventDefault();
    publish();
  });
  ui.pubData.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ui.publishForm.requestSubmit();
    }
  });

  // The node that served the page, which the server writes into it: in a
  // cluster behind a load balancer, it tells which node this is.
  const node = document.querySelector('meta[name="ssehub-node"]')?.content || "";
  if (node) {
    byTestID("node-name").textContent = node;
    byTestID("node").hidden = false;
  }

  // checkReady shows the hub's readiness (GET readyz): not ready while the
  // hub waits for its store, for example a Redis or NATS that is down.
  // The check goes to whichever node the load balancer picks.
  const hubReady = byTestID("hub-ready");
  async function checkReady() {
    let ready = false;
    let why = "";
    try {
      const resp = await fetch("readyz", { cache: "no-store" });
      ready = resp.ok;
      if (!ready) {
        why = (await resp.json().catch(() => ({}))).detail || `HTTP ${resp.status}`;
      }
    } catch (err) {
      why = "the hub cannot be reached";
    }
    hubReady.textContent = ready ? "HUB READY" : "HUB NOT READY";
    hubReady.dataset.state = ready ? "ready" : "closed";
    hubReady.title = ready ? "The hub's readiness (GET readyz): ready" : `The hub's readiness (GET readyz): ${why}`;
  }
  setInterval(checkReady, 5000);
  checkReady();

  let drawnSecond = 0;
  setInterval(() => {
    updateState();
    const now = Math.floor(Date.now() / 1000);
    if (now !== drawnSecond) {
      drawnSecond = now;
      draw();
    }
  }, 200);
  updateState();
  draw();
})();

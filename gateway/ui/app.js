// The Sluice dashboard: polls the gateway's state every second and draws
// each application's graph with live rates computed from counter deltas.

const STATE = "/sluice/v1/ui/state";
const POLL_MS = 1000;
const WINDOW_MS = 5000; // the gateway's rates and p99 over about the last five seconds
// Replicas report their counters every five seconds: a deployment's
// rates come from each replica's reports over the last sixteen.
const REPORT_WINDOW_MS = 16000;
const TOKEN_KEY = "sluice-token";
const SVG = "http://www.w3.org/2000/svg";

// samples are the recent states, oldest first, for counter deltas.
const samples = [];

function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) e.append(c);
  }
  return e;
}

function fmtRate(r) {
  if (r === null) return "—";
  if (r === 0) return "0";
  if (r < 10) return r.toFixed(1);
  return Math.round(r).toLocaleString("en");
}

function fmtNum(n) {
  return n === undefined || n === null ? "—" : Number(n).toLocaleString("en");
}

function fmtBytes(b) {
  if (!b) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${b.toFixed(b < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
}

function fmtSeconds(s) {
  if (s === null) return "—";
  if (!isFinite(s)) return "> 30 s";
  if (s < 1) return `≤ ${+(s * 1000).toPrecision(3)} ms`;
  return `≤ ${s} s`;
}

// fmtDepP99 is a deployment's handler p99 as its replicas report it:
// a bucket's upper bound in seconds, 0 when no handler ran lately, -1
// past the last bound.
function fmtDepP99(s) {
  if (!s) return "—";
  return fmtSeconds(s < 0 ? Infinity : s);
}

// P99_TITLE says what a deployment's p99 is.
const P99_TITLE = "p99 of handler time: the slowest of the replicas' own p99 over their last 5–10 s, each reported every 5 s (a bucket's upper bound)";

function ago(t) {
  const d = (Date.now() - Date.parse(t)) / 1000;
  if (!isFinite(d)) return "";
  if (d < 60) return `${Math.max(0, Math.round(d))} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  return `${Math.round(d / 3600)} h ago`;
}

// base is the sample rates are measured from: the oldest one within
// the window, else the one before the latest.
function base(now) {
  for (const s of samples) {
    if (s !== now && now.time_ms - s.time_ms <= WINDOW_MS) return s;
  }
  return samples.length > 1 ? samples[samples.length - 2] : null;
}

function deployment(state, app, name) {
  const a = state && state.applications.find((x) => x.name === app);
  return a && (a.deployments || []).find((d) => d.name === name);
}

// rate is (counter now − counter then) per second; null without a base.
// A counter that went down (replicas restarted) counts from zero.
function rate(now, then, get) {
  if (!then) return null;
  const dt = (now.time_ms - then.time_ms) / 1000;
  if (dt <= 0) return null;
  const a = get(now), b = get(then);
  if (a === undefined) return null;
  const d = a - (b === undefined ? 0 : b);
  return (d < 0 ? a : d) / dt;
}

// depRate is a deployment's field (processed, failed) per second: for
// each replica process, the change between its latest report and its
// oldest other report within the window, over the time between them,
// summed.
// null until some replica has two reports.
function depRate(now, app, dep, field) {
  const cur = deployment(now, app, dep);
  let sum = null;
  for (const r of (cur && cur.replica_reports) || []) {
    let old = null;
    for (const s of samples) {
      if (s === now || now.time_ms - s.time_ms > REPORT_WINDOW_MS) continue;
      const d = deployment(s, app, dep);
      // The same process: a replica restarted under its name starts
      // its counters again.
      old = ((d && d.replica_reports) || []).find((x) => x.instance === r.instance && x.started === r.started && x.at !== r.at);
      if (old) break;
    }
    if (!old) continue;
    const dt = (Date.parse(r.at) - Date.parse(old.at)) / 1000;
    const dv = (r[field] || 0) - (old[field] || 0);
    if (dt > 0 && dv >= 0) sum = (sum || 0) + dv / dt;
  }
  return sum;
}

// p99 of the calls to app between two states, from the histogram's
// bucket deltas: the upper bound of the bucket holding the 99th
// percentile; null when no call came in between.
function p99(now, then, app) {
  const cur = now.requests[app];
  if (!cur || !cur.buckets) return null;
  const prev = (then && then.requests[app] && then.requests[app].buckets) || [];
  const d = cur.buckets.map((n, i) => Math.max(0, n - (prev[i] || 0)));
  const total = d.reduce((x, y) => x + y, 0);
  if (total === 0) return null;
  let cum = 0;
  for (let i = 0; i < d.length; i++) {
    cum += d[i];
    if (cum >= 0.99 * total) return i < now.latency_bounds.length ? now.latency_bounds[i] : Infinity;
  }
  return Infinity;
}

// layers assigns each deployment a column: its longest path from the
// ingress along the edges (a graph is acyclic; a bound keeps a bad one
// from looping).
function layers(app) {
  const names = (app.deployments || []).map((d) => d.name);
  const layer = Object.fromEntries(names.map((n) => [n, 0]));
  const edges = app.graph.edges || [];
  for (let round = 0; round < names.length; round++) {
    let changed = false;
    for (const e of edges) {
      if (e.from in layer && e.to in layer && layer[e.to] < layer[e.from] + 1) {
        layer[e.to] = layer[e.from] + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

const NODE_W = 178, NODE_H = 82, COL = 250, ROW = 88, PORT_W = 96, PAD = 16;

function drawGraph(app, now, then) {
  const layer = layers(app);
  const cols = [];
  for (const d of app.deployments || []) {
    const l = layer[d.name] ?? 0;
    (cols[l] = cols[l] || []).push(d.name);
  }
  const rows = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
  const height = rows * ROW + 2 * PAD - (ROW - NODE_H);
  const pos = {};
  cols.forEach((c, l) => {
    (c || []).forEach((name, i) => {
      const off = ((rows - c.length) * ROW) / 2;
      pos[name] = { x: PAD + PORT_W + 60 + l * COL, y: PAD + off + i * ROW };
    });
  });
  const width = PAD + PORT_W + 60 + cols.length * COL - (COL - NODE_W) + 60 + PORT_W + PAD;
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `graph of ${app.name}` });
  const id = `arrow-${app.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  svg.append(el("svg:defs", {}, el("svg:marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    el("svg:path", { d: "M0,0 L10,5 L0,10 z" }))));
  const mid = height / 2;
  const inPort = { x: PAD, y: mid - 16 }, outPort = { x: width - PAD - PORT_W, y: mid - 16 };
  const curve = (x1, y1, x2, y2) => {
    const dx = Math.max(30, (x2 - x1) / 2);
    return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  };
  const edge = (d, cls, attrs, label) => {
    const g = el("svg:g", {}, el("svg:path", { d, class: cls, "marker-end": `url(#${id})`, ...attrs }));
    if (label) g.append(el("svg:title", { text: label }));
    svg.append(g);
  };
  if (pos[app.ingress]) {
    const p = pos[app.ingress];
    edge(curve(inPort.x + PORT_W, mid, p.x, p.y + NODE_H / 2), "edge ingress-edge", { "data-from": "ingress", "data-to": app.ingress }, app.graph.ingress_topic);
  }
  for (const e of app.graph.edges || []) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const cls = ["edge", e.handle ? "handle" : "", e.when ? "ruled" : ""].filter(Boolean).join(" ");
    const label = `${e.topic}${e.handle ? " (handle: calls)" : ""}${e.when ? `\nwhen ${e.when}` : ""}${e.mirror ? "\nmirror" : ""}`;
    edge(curve(a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2), cls, { "data-from": e.from, "data-to": e.to, "data-topic": e.topic }, label);
  }
  for (const o of app.graph.outputs || []) {
    const a = pos[o];
    if (!a) continue;
    edge(curve(a.x + NODE_W, a.y + NODE_H / 2, outPort.x, mid), "edge output-edge", { "data-from": o, "data-to": "output" }, app.graph.output_topic);
  }
  const port = (p, label, cls, title) => svg.append(el("svg:g", { class: `port ${cls}` },
    el("svg:rect", { x: p.x, y: p.y, width: PORT_W, height: 32, rx: 16 }),
    el("svg:text", { x: p.x + PORT_W / 2, y: p.y + 20, "text-anchor": "middle", text: label }),
    el("svg:title", { text: title })));
  port(inPort, app.route_prefix || "ingress", "ingress", `ingress: ${app.graph.ingress_topic}`);
  port(outPort, "output", "output", `output: ${app.graph.output_topic}`);
  for (const d of app.deployments || []) {
    const p = pos[d.name];
    const r = depRate(now, app.name, d.name, "processed"), f = depRate(now, app.name, d.name, "failed");
    const cls = ["node", f > 0 ? "failing" : "", d.replicas === 0 ? "idle" : ""].filter(Boolean).join(" ");
    const lag = d.lag < 0 ? "?" : fmtNum(d.lag);
    svg.append(el("svg:g", { class: cls, "data-deployment": d.name },
      el("svg:rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 8 }),
      el("svg:text", { class: "name", x: p.x + 10, y: p.y + 19, text: d.name }),
      el("svg:text", { class: "line", x: p.x + 10, y: p.y + 37, "data-metric": "rate", text: `${fmtRate(r)} req/s · ${fmtRate(f)} err/s` }),
      el("svg:text", { class: "line", x: p.x + 10, y: p.y + 54, text: `${d.replicas}/${d.target} replicas · lag ${lag}` }),
      el("svg:text", { class: "line", x: p.x + 10, y: p.y + 71, "data-metric": "p99", text: `p99 ${fmtDepP99(d.handler_p99_seconds)}` }),
      el("svg:title", { text: `${d.name}\nhandler ${d.handler || "—"}\ngroup ${d.group}\nrevision ${d.revision || "—"}\n${P99_TITLE}` })));
  }
  return svg;
}

function deploymentRows(app, now, then) {
  const head = el("tr", {}, ["deployment", "replicas", "req/s", "err/s", "p99", "in flight", "lag", "processed", "failed", "partitions", "revision", "last scaling decision"].map((h) => el("th", { text: h })));
  const rows = (app.deployments || []).map((d) => {
    const r = depRate(now, app.name, d.name, "processed"), f = depRate(now, app.name, d.name, "failed");
    const roll = d.outdated > 0 ? ` (rolling: ${d.updated} new, ${d.outdated} old)` : "";
    return el("tr", { "data-app": app.name, "data-deployment": d.name },
      el("td", { text: d.name, title: d.error || "" , class: d.error ? "bad" : "" }),
      el("td", { text: `${d.replicas}/${d.target}`, class: d.replicas < d.target ? "warn" : "" }),
      el("td", { "data-metric": "rate", text: fmtRate(r) }),
      el("td", { "data-metric": "errors", text: fmtRate(f), class: f > 0 ? "bad" : "" }),
      el("td", { "data-metric": "p99", text: fmtDepP99(d.handler_p99_seconds), title: P99_TITLE }),
      el("td", { text: fmtNum(d.ongoing) }),
      el("td", { "data-metric": "lag", text: d.lag < 0 ? "?" : fmtNum(d.lag) }),
      el("td", { "data-metric": "processed", text: fmtNum(d.processed) }),
      el("td", { text: fmtNum(d.failed), class: d.failed > 0 ? "bad" : "" }),
      el("td", { text: fmtNum(d.partitions_assigned) }),
      el("td", { class: "left muted", text: `${(d.revision || "—").slice(0, 12)}${roll}` }),
      el("td", { class: "left", "data-metric": "decision" }, d.autoscaler ? lastDecision(d.autoscaler) : el("span", { class: "muted", text: "no autoscaler" })));
  });
  return el("table", { class: "deployments" }, el("thead", {}, head), el("tbody", {}, rows));
}

function decisionText(x) {
  const how = x.from === x.to ? `held at ${x.to}` : `${x.from} → ${x.to}`;
  const why = [x.reason, x.rate ? `lag growth ${x.rate.toFixed(1)}/s` : "", x.panic ? "burst" : ""].filter(Boolean).join(", ");
  return [how, why];
}

// lastDecision is the autoscaler's latest decision, its problems first.
function lastDecision(a) {
  const out = el("span", { title: `${a.min}–${a.max} replicas, ${a.ready} ready` });
  if (a.problem) out.append(el("span", { class: "bad", text: `${a.problem} · ` }));
  if (a.lag_error) out.append(el("span", { class: "warn", text: `lag unreadable: ${a.lag_error} · ` }));
  if (!a.last || !a.last.time || a.last.time.startsWith("0001")) {
    out.append(el("span", { class: "muted", text: "no decision yet" }));
    return out;
  }
  const [how, why] = decisionText(a.last);
  out.append(el("b", { text: how }), ` ${why} `, el("span", { class: "muted", text: ago(a.last.time) }));
  return out;
}

// openDetails keeps which collapsible parts the reader opened across
// redraws.
const opened = new Map();

function details(key, title, body, open = false) {
  const d = el("details", { open: opened.has(key) ? opened.get(key) : open, "data-key": key }, el("summary", { text: title }), body);
  d.addEventListener("toggle", () => opened.set(key, d.open));
  return d;
}

function autoscaling(app) {
  const items = [];
  for (const d of app.deployments || []) {
    for (const x of ((d.autoscaler && d.autoscaler.history) || []).slice().reverse()) {
      const [how, why] = decisionText(x);
      items.push(el("li", { "data-deployment": d.name, title: x.time }, el("b", { text: `${d.name}: ${how}` }), ` ${why} `, el("span", { class: "muted", text: ago(x.time) })));
    }
  }
  if (!items.length) return null;
  return details(`${app.name}/scaling`, `Scaling history (${items.length} changes)`, el("ul", { class: "decisions" }, items));
}

function modelReplicas(app) {
  const rows = [];
  for (const d of app.deployments || []) {
    for (const m of d.models || []) {
      const failed = Object.entries(m.failed || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
      rows.push(el("tr", { "data-deployment": d.name },
        el("td", { text: `${d.name} / ${m.replica}` }),
        el("td", { class: "left", text: (m.loaded || []).join(", ") || "—" }),
        el("td", { class: "left", text: (m.loading || []).join(", ") || "" }),
        el("td", { text: fmtBytes(m.memory_bytes) }),
        el("td", { text: `${fmtNum(m.hits)} / ${fmtNum(m.misses)}` }),
        el("td", { text: fmtNum(m.loads) }),
        el("td", { text: fmtNum(m.evictions) }),
      el("td", { text: fmtNum(m.failures), class: m.failures > 0 ? "bad" : "" }),
        el("td", { class: failed ? "left bad" : "left", text: failed || "" })));
    }
  }
  if (!rows.length) return null;
  const head = el("tr", {}, ["model replica", "loaded (most recent first)", "loading", "memory", "hits / misses", "loads", "evictions", "load failures", "failed"].map((h) => el("th", { text: h })));
  return details(`${app.name}/models`, `Model replicas and caches (${rows.length})`, el("table", {}, el("thead", {}, head), el("tbody", {}, rows)), true);
}

function drawApp(app, now, then) {
  const calls = (s) => { const c = s.requests[app.name]; return c && c.ok + c.failed; };
  const errs = (s) => { const c = s.requests[app.name]; return c && c.failed; };
  const r = rate(now, then, calls), f = rate(now, then, errs), q = p99(now, then, app.name);
  const sec = el("section", { class: "app", "data-app": app.name },
    el("div", { class: "app-head" },
      el("h2", { text: app.name }),
      el("span", { class: "stat" }, "route ", el("b", { text: app.route_prefix || "—" })),
      el("span", { class: "stat" }, "calls/s ", el("b", { "data-metric": "app-rate", text: fmtRate(r) })),
      el("span", { class: "stat" }, "errors/s ", el("b", { "data-metric": "app-errors", text: fmtRate(f), class: f > 0 ? "bad" : "" })),
      el("span", { class: "stat" }, "p99 ", el("b", { "data-metric": "app-p99", text: fmtSeconds(q) })),
      el("span", { class: "stat" }, "generation ", el("b", { text: String(app.generation) }))));
  if (app.rejected) {
    sec.append(el("div", { class: "rejected", text: `spec at generation ${app.rejected.generation} refused: ${app.rejected.reason}` }));
  }
  if ((app.deployments || []).length) {
    sec.append(el("div", { class: "graph" }, drawGraph(app, now, then)), deploymentRows(app, now, then));
  }
  for (const part of [autoscaling(app), modelReplicas(app)]) {
    if (part) sec.append(part);
  }
  return sec;
}

function drawNodes(nodes) {
  if (!nodes.length) {
    return el("p", { class: "muted", text: "No node agents report here (sluice dev runs replicas in its own process)." });
  }
  return el("div", { class: "nodes" }, nodes.map((n) => el("div", { class: "node-card", "data-node": n.name },
    el("h3", { text: n.name }),
    el("div", { class: "muted", text: [n.cpu ? `${n.cpu} CPU` : "", n.memory_bytes ? fmtBytes(Number(n.memory_bytes)) : "",
      n.driver ? `driver ${n.driver}` : "", `reported ${ago(n.time)}`].filter(Boolean).join(" · ") }),
    n.gpu_problem ? el("div", { class: "warn", text: n.gpu_problem }) : null,
    (n.gpus || []).flatMap((g) => [g, ...(g.instances || [])]).map((g) => {
      const total = Number(g.memory_total_bytes || 0), free = Number(g.memory_free_bytes || 0);
      const util = el("div", {}), placed = el("div", {});
      util.style.width = `${Math.max(0, g.utilization || 0)}%`;
      placed.style.width = `${Math.min(100, (g.placed_fraction || 0) * 100)}%`;
      const name = g.mig ? `  MIG ${g.mig_index}` : `GPU ${g.index}`;
      return el("div", { class: "gpu", "data-gpu": g.uuid },
        el("div", {}, el("b", { text: name }), ` ${g.name || ""} · ${fmtBytes(total - free)} / ${fmtBytes(total)} used · ${g.utilization < 0 ? "busy ?" : `${g.utilization || 0}% busy`} · ${Math.round((g.placed_fraction || 0) * 100)}% placed`),
        g.problem ? el("div", { class: "bad", text: g.problem }) : null,
        el("div", { class: "bar", title: "utilization" }, util),
        el("div", { class: "bar placed", title: "placed" }, placed));
    }),
    (n.models || []).length ? el("div", { class: "muted", text: `models on disk: ${n.models.join(", ")}` }) : null)));
}

function render(now) {
  const then = base(now);
  document.getElementById("apps").replaceChildren(...now.applications.map((a) => drawApp(a, now, then)));
  document.getElementById("nodes").replaceChildren(drawNodes(now.nodes));
  const deps = now.applications.reduce((n, a) => n + (a.deployments || []).length, 0);
  document.getElementById("summary").textContent =
    `${now.applications.length} applications · ${deps} deployments · ${now.nodes.length} nodes · ${now.gateway.in_flight} in flight`;
}

const live = () => document.getElementById("live");

async function poll() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const resp = await fetch(STATE, { headers, cache: "no-store" });
    if (resp.status === 401 || resp.status === 403) {
      const body = await resp.json().catch(() => ({}));
      askToken(token ? body.error || `HTTP ${resp.status}` : "");
      return; // polling resumes when a token is given
    }
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const state = await resp.json();
    samples.push(state);
    while (samples.length > 1 && state.time_ms - samples[0].time_ms > REPORT_WINDOW_MS + 2 * POLL_MS) samples.shift();
    render(state);
    live().className = "live ok";
    live().textContent = `live · ${new Date(state.time_ms).toLocaleTimeString()}`;
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (err) {
    live().className = "live err";
    live().textContent = `unreachable: ${err.message}`;
  }
  setTimeout(poll, POLL_MS);
}

function askToken(problem) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-error").textContent = problem;
  live().className = "live err";
  live().textContent = "token needed";
  document.getElementById("token").focus();
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  const t = input.value.trim();
  input.value = "";
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  document.getElementById("login").hidden = true;
  poll();
});

poll();

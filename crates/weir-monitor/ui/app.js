// weir's run page: draws a run's graph, figures, throughput chart and
// checkpoints from the JSON API (/api/v1/job, /api/v1/metrics), polled
// every second; or, in a report file, from window.WEIR_REPORT
// ({runs: [{job, history}]}) with no server. Plain DOM and SVG: no
// framework, no network beyond the job's own server.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const ns = ["svg", "g", "rect", "text", "path", "line", "polyline", "marker", "defs", "tspan", "title"].includes(tag);
  const e = ns ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function num(n) {
  if (n === null || n === undefined) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "K";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
}

function time(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 9.2e18 || ms <= -9.2e18) return "end";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = ms / 1000;
  if (Math.abs(s) < 1) return ms.toFixed(0) + " ms";
  if (Math.abs(s) < 120) return s.toFixed(1) + " s";
  if (Math.abs(s) < 7200) return (s / 60).toFixed(1) + " min";
  if (Math.abs(s) < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function figure(label, value, key) {
  return el("div", { class: "figure" }, el("b", { "data-figure": key }, value), el("span", {}, label));
}

// busy 0 → green, 1000 ms/s → red; back pressure shown by a dark border
function busyColour(busy) {
  const f = Math.max(0, Math.min(1, (busy || 0) / 1000));
  return `hsl(${Math.round(120 * (1 - f))}, 65%, ${Math.round(88 - 18 * f)}%)`;
}

function layout(job) {
  const depth = job.operators.map(() => 0);
  for (let pass = 0; pass < job.operators.length; pass++) {
    for (const e of job.edges) depth[e.to] = Math.max(depth[e.to], depth[e.from] + 1);
  }
  const rows = {};
  return job.operators.map((o) => {
    const d = depth[o.id];
    rows[d] = (rows[d] || 0) + 1;
    return { x: 20 + d * 230, y: 20 + (rows[d] - 1) * 110 };
  });
}

function graph(job) {
  const W = 190, H = 86;
  const at = layout(job);
  const width = Math.max(...at.map((p) => p.x), 0) + W + 40;
  const height = Math.max(...at.map((p) => p.y), 0) + H + 30;
  const svg = el("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, height, "data-operators": job.operators.length });
  svg.append(el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8b93a3" }))));
  for (const e of job.edges) {
    const a = at[e.from], b = at[e.to];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    svg.append(el("path", { class: "edge " + e.kind, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
    const label = e.kind + (e.port === 1 ? " (late)" : e.port === 2 ? " (dead letters)" : "");
    svg.append(el("text", { class: "edge-label", x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, label));
  }
  for (const o of job.operators) {
    const p = at[o.id];
    const pressured = o.backpressured_ms_per_s > 100;
    const g = el("g", { class: "op", "data-operator": o.name, transform: `translate(${p.x},${p.y})` });
    g.append(el("title", {}, `${o.name}: busy ${num(o.busy_ms_per_s)} ms/s, idle ${num(o.idle_ms_per_s)} ms/s, back-pressured ${num(o.backpressured_ms_per_s)} ms/s`));
    g.append(el("rect", { width: W, height: H, rx: 6, fill: busyColour(o.busy_ms_per_s), stroke: pressured ? "#3a1d5c" : "#9aa3b3", "stroke-width": pressured ? 3 : 1 }));
    const line = (y, cls, text, key) => g.append(el("text", { x: 8, y, class: cls, "data-figure": key, "data-operator": key ? o.name : null }, text));
    line(16, "name", o.name);
    line(31, "", `${o.kind} · p=${o.parallelism} · busy ${num(o.busy_ms_per_s)} ms/s`);
    line(46, "", `${num(o.kind === "sink" ? o.rows_in_per_s : o.rows_out_per_s)} rows/s · ${num(o.kind === "sink" ? o.rows_in : o.rows_out)} rows`, "rows");
    line(61, "", `wm ${o.watermark === null ? "–" : time(o.watermark).slice(5, 19)}`, "watermark");
    line(76, "", `state ${bytes(o.state_bytes)}` + (o.spilled_state_bytes ? ` · spilled ${bytes(o.spilled_state_bytes)}` : "") +
      (pressured ? ` · bp ${num(o.backpressured_ms_per_s)} ms/s` : ""), "state");
    svg.append(g);
  }
  return svg;
}

function chart(history) {
  const W = 900, H = 160, pad = 34;
  const s = history ? history.samples : [];
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  if (s.length < 2) {
    svg.append(el("text", { x: 10, y: 20 }, "throughput and watermark lag appear after two seconds"));
    return svg;
  }
  const t0 = s[0].t, t1 = s[s.length - 1].t || 1;
  const x = (t) => pad + ((t - t0) / Math.max(t1 - t0, 1e-3)) * (W - 2 * pad);
  const maxRate = Math.max(...s.map((v) => v.rows_per_s), 1);
  const lags = s.map((v) => (v.watermark === null || v.watermark > 9e18 ? null : (Date.now() - v.watermark) / 1000));
  const known = lags.filter((v) => v !== null);
  const maxLag = Math.max(...known, 1);
  const y = (v, max) => H - 18 - (v / max) * (H - 30);
  svg.append(el("polyline", { class: "rate", points: s.map((v) => `${x(v.t)},${y(v.rows_per_s, maxRate)}`).join(" ") }));
  if (known.length > 1) {
    svg.append(el("polyline", { class: "lag", points: s.map((v, i) => (lags[i] === null ? "" : `${x(v.t)},${y(lags[i], maxLag)}`)).join(" ") }));
  }
  svg.append(el("text", { x: 2, y: 12 }, `${num(maxRate)} rows/s`));
  svg.append(el("text", { x: W - 2, y: 12, "text-anchor": "end" }, `lag ${duration(maxLag * 1000)}`));
  svg.append(el("text", { x: pad, y: H - 4 }, `${t0.toFixed(0)} s`));
  svg.append(el("text", { x: W - pad, y: H - 4, "text-anchor": "end" }, `${t1.toFixed(0)} s`));
  return svg;
}

function operatorTable(job) {
  const head = ["operator", "p", "rows in", "rows out", "rows/s", "busy ms/s", "back-pressured ms/s", "queue", "watermark", "state", "spilled", "late", "dead letters", "behind"];
  return el("table", { class: "operators" },
    el("tr", {}, head.map((h) => el("th", {}, h))),
    job.operators.map((o) => el("tr", { "data-operator": o.name },
      el("td", {}, o.name), el("td", {}, o.parallelism),
      el("td", { "data-figure": "rows_in", "data-operator": o.name }, num(o.rows_in)),
      el("td", { "data-figure": "rows_out", "data-operator": o.name }, num(o.rows_out)),
      el("td", {}, num(o.kind === "sink" ? o.rows_in_per_s : o.rows_out_per_s)),
      el("td", {}, num(o.busy_ms_per_s)), el("td", {}, num(o.backpressured_ms_per_s)),
      el("td", {}, (o.queue_fill * 100).toFixed(0) + "%"),
      el("td", {}, o.watermark === null ? "–" : time(o.watermark)),
      el("td", {}, bytes(o.state_bytes)), el("td", {}, bytes(o.spilled_state_bytes)),
      el("td", {}, num(o.late_rows)), el("td", {}, num(o.bad_records)),
      el("td", {}, num(o.records_behind)))));
}

function checkpointTable(job) {
  const c = job.checkpoints;
  if (!c.count && !c.failures) return el("p", { class: "legend" }, "no checkpoints (run with --checkpoint-dir)");
  return el("div", {},
    el("p", {}, `${c.count} completed · ${c.failures} failed`),
    el("table", { class: "checkpoints" },
      el("tr", {}, ["id", "at", "duration", "alignment", "size", "kind"].map((h) => el("th", {}, h))),
      c.history.slice(-10).reverse().map((k) => el("tr", {},
        el("td", {}, k.id), el("td", {}, k.completed_s.toFixed(1) + " s"), el("td", {}, duration(k.duration_ms)),
        el("td", {}, duration(k.alignment_ms)), el("td", {}, bytes(k.bytes)), el("td", {}, k.savepoint ? "savepoint" : "checkpoint")))));
}

function run(job, history) {
  const section = el("section", { class: "run", "data-state": job.state });
  section.append(el("h2", {}, job.title, el("span", { class: "badge " + job.state }, job.state), el("span", { class: "badge" }, job.mode)));
  if (job.errors.length) section.append(el("div", { class: "error", "data-figure": "error" }, job.errors[0]));
  const lag = job.watermark_lag_ms;
  section.append(el("div", { class: "figures" },
    figure("elapsed", duration(job.elapsed_s * 1000), "elapsed"),
    figure("rows read", num(job.rows_read) + (job.total_rows ? ` of ${num(job.total_rows)}` : ""), "rows_read"),
    figure("rows/s", num(job.rows_per_s), "rows_per_s"),
    figure("watermark", job.watermark === null ? "–" : time(job.watermark), "watermark"),
    figure("watermark lag", lag === null ? "–" : duration(lag), "watermark_lag"),
    figure("memory", `${bytes(job.memory.reserved)} of ${bytes(job.memory.budget)}`, "memory"),
    figure("spilled", `${bytes(job.spill.bytes)} in ${job.spill.files} files`, "spill"),
    figure("restarts", job.restarts, "restarts")));
  if (job.stage) {
    const done = job.total_rows ? job.rows_read / job.total_rows : 0;
    section.append(el("div", { class: "stage" }, `stage ${job.stage.index} of ${job.stage.count}: ${job.stage.operators.join(" → ")} `,
      el("progress", { max: 1, value: job.state === "finished" ? 1 : done })));
  }
  section.append(el("h3", {}, "graph"),
    el("div", { class: "legend" }, "colour: busy time", el("i", { style: `background:${busyColour(0)}` }), "idle",
      el("i", { style: `background:${busyColour(500)}` }), "half", el("i", { style: `background:${busyColour(1000)}` }), "busy",
      el("i", { style: "border:3px solid #3a1d5c" }), "back-pressured"),
    graph(job));
  section.append(el("h3", {}, "throughput (rows read/s, solid) and watermark lag (dashed)"), chart(history));
  section.append(el("h3", {}, "operators"), operatorTable(job));
  section.append(el("h3", {}, "checkpoints"), checkpointTable(job));
  return section;
}

function render(runs, status) {
  const main = document.getElementById("runs");
  main.replaceChildren(...runs.map((r) => run(r.job, r.history)));
  document.getElementById("status").textContent = status;
}

async function poll() {
  try {
    const [job, history] = await Promise.all([
      fetch("api/v1/job").then((r) => r.json()),
      fetch("api/v1/metrics").then((r) => r.json()),
    ]);
    render([{ job, history }], `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    document.getElementById("status").textContent = "the job is gone (" + e.message + ")";
    return;
  }
  setTimeout(poll, 1000);
}

if (window.WEIR_REPORT) {
  render(window.WEIR_REPORT.runs, "report · " + (window.WEIR_REPORT.created || ""));
} else {
  poll();
}

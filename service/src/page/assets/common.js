// driftwatch status page: what the overview and the table page share. Plain DOM, no
// framework, no external resource. Values from the server are set as text, never as HTML.
"use strict";

const DW = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "driftwatch-token";
  const body = document.body.dataset;
  const tokenRequired = body.token === "true";

  /** An element with attributes and children (strings become text nodes). */
  const present = (children) => children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    e.append(...present(children));
    return e;
  }
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    e.append(...present(children));
    return e;
  }
  /** Replaces a node's children (nested lists flattened, absent ones left out). */
  function put(node, ...children) {
    node.replaceChildren(...present(children));
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }

  const nf = new Intl.NumberFormat("en-US");
  const num = (n) => (n === null || n === undefined ? "–" : nf.format(n));

  /** "3 h 12 min", "45 s", "2 d 4 h": the two largest units. */
  function age(ms) {
    if (!(ms >= 0)) ms = 0;
    let s = Math.floor(ms / 1000);
    const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
    const parts = [];
    for (const [name, size] of units) {
      if (s >= size || (name === "s" && parts.length === 0)) {
        parts.push(`${Math.floor(s / size)} ${name}`);
        s %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }
  /** A `<time>` showing an age ("3 min ago"), with the exact time on hover. */
  function ago(iso, suffix = " ago") {
    if (!iso) return el("span", { class: "muted", text: "never" });
    const t = new Date(iso);
    return el("time", {
      datetime: iso,
      title: t.toISOString().replace("T", " ").replace("Z", " UTC"),
      text: age(Date.now() - t.getTime()) + suffix,
    });
  }

  // Severity: what is shown first.
  const ORDER = ["error", "divergent", "schema", "pending", "unknown", "converged"];
  const LABEL = {
    error: "✖ error", divergent: "▲ divergent", schema: "◆ schema differs",
    pending: "… pending", unknown: "○ no pass yet", converged: "✔ converged",
  };
  // Alert states and their runbook sections (deploy/prometheus/alerts.yml).
  const RUNBOOK = {
    error: "driftwatchvalidationstale", divergent: "driftwatchconfirmeddivergence",
    schema: "driftwatchschemamismatch", unknown: "driftwatchvalidationneversucceeded",
  };
  /** The one state a pair is sorted and filtered by. */
  function category(p) {
    if (p.state === "error") return "error";
    if (p.state === "divergent") return "divergent";
    if (p.schema_mismatch || p.state === "schema") return "schema";
    if (p.state === "converged") return "converged";
    if (p.state === "unknown") return "unknown";
    return "pending"; // pending, and any state of in-flight rows a newer server reports
  }
  function badge(cat) {
    return el("span", { class: `badge ${cat}`, "data-state": cat, text: LABEL[cat] || cat });
  }
  function runbookLink(cat, text) {
    const anchor = RUNBOOK[cat];
    return anchor ? el("a", { href: `/runbook#${anchor}`, text: text || "runbook" }) : null;
  }
  function grafanaLink(p) {
    if (!body.grafana) return null;
    const u = new URL(body.grafana, location.href);
    u.searchParams.set("var-group", p.group);
    u.searchParams.set("var-table", p.table);
    u.searchParams.set("var-subscriber", p.subscriber);
    return el("a", { href: u.toString(), text: "Grafana" });
  }
  function tablePage(p) {
    return `/tables/${encodeURIComponent(p.group)}/${encodeURIComponent(p.table)}?subscriber=${encodeURIComponent(p.subscriber)}`;
  }
  const total = (t) => (t ? (t.missing || 0) + (t.extra || 0) + (t.changed || 0) : 0);
  /** "10 missing · 5 extra · 15 changed", kinds with rows only. */
  function kinds(t) {
    if (!t) return el("span", { class: "muted", text: "–" });
    const parts = ["missing", "extra", "changed"].filter((k) => t[k] > 0).map((k) => `${num(t[k])} ${k}`);
    return el("span", { class: "kinds", "data-total": total(t), text: parts.length ? parts.join(" · ") : "none" });
  }

  /** The key-space strip: the publisher's rows in key order, mismatches marked. */
  function strip(p, width = 200) {
    const h = 22;
    const ranges = p.mismatched_ranges || [];
    const rows = p.publisher_rows;
    const label = ranges.length
      ? `key space of ${num(rows)} publisher rows: ${ranges.length} mismatched stretch${ranges.length > 1 ? "es" : ""} at ` +
        ranges.slice(0, 8).map((r) => `${Math.round(r.from * 100)}%`).join(", ") + (ranges.length > 8 ? ", …" : "")
      : p.state === "unknown" ? "no pass yet" : `key space of ${num(rows)} publisher rows: no mismatched chunk`;
    const marks = ranges.map((r) => {
      const x = r.from * width;
      const w = Math.max((r.to - r.from) * width, 2);
      const tip = `rows ${num(Math.round(r.from * rows))}–${num(Math.round(r.to * rows))} of ${num(rows)} in key order: ` +
        `publisher ${num(r.publisher_rows)}, subscriber ${num(r.subscriber_rows)}` + (r.range ? ` (${r.range})` : "");
      return svg("rect", { class: "mark", x: Math.min(x, width - w), y: 2, width: w, height: h - 4, "data-from": r.from, "data-to": r.to },
        svg("title", { text: tip }));
    });
    return svg("svg", { class: "strip", width, height: h, viewBox: `0 0 ${width} ${h}`, role: "img", "aria-label": label },
      svg("title", { text: label }),
      svg("rect", { class: "space", x: 0, y: 6, width, height: h - 12 }), marks);
  }

  /** Divergent rows after each of the last passes; failed passes marked at the bottom. */
  function sparkline(history, width = 110) {
    const h = 26;
    history = history || [];
    const value = (x) => (x.confirmed || 0) + (x.pending || 0) + (x.in_flight || 0);
    const max = Math.max(1, ...history.map(value));
    // The right end is kept for the latest value, written out.
    const step = history.length > 1 ? (width - 32) / (history.length - 1) : 0;
    const pts = history.map((x, i) => [2 + i * step, h - 4 - (value(x) / max) * (h - 8)]);
    const last = history.length ? history[history.length - 1] : null;
    const label = history.length
      ? `divergent rows over the last ${history.length} passes: ${history.map((x) => (x.error ? "failed" : value(x))).join(", ")}`
      : "no pass yet";
    return svg("svg", { class: "spark", width, height: h, viewBox: `0 0 ${width} ${h}`, role: "img", "aria-label": label },
      svg("title", { text: label }),
      pts.length > 1 ? svg("polyline", { class: "line", points: pts.map((q) => q.join(",")).join(" ") }) : null,
      pts.length === 1 ? svg("circle", { class: "fail", cx: pts[0][0], cy: pts[0][1], r: 2 }) : null,
      history.map((x, i) => (x.error ? svg("rect", { class: "fail", x: pts[i][0] - 1.5, y: h - 3, width: 3, height: 3 }) : null)),
      last && !last.error ? svg("text", { x: width - 2, y: 9, "text-anchor": "end", text: num(value(last)) }) : null);
  }

  /** A time_column value as shown by the server ('2025-06-14 02:00:53', quoted text, +00). */
  function parseTime(v) {
    if (!v) return null;
    let s = String(v).replace(/^"|"$/g, "").trim().replace(" ", "T");
    if (/\+00$/.test(s)) s = s.replace(/\+00$/, "Z");
    else if (!/(Z|[+-]\d\d:?\d\d)$/.test(s) && /T/.test(s)) s += "Z";
    const t = Date.parse(s);
    return Number.isNaN(t) ? null : t;
  }
  const plain = (v) => String(v).replace(/^"|"$/g, "");

  /** The gap: the time window of the missing rows on a time axis, with its row count. */
  function gapChart(p, width = 420) {
    if (!p.missing_window) return null;
    const [a, b] = p.missing_window;
    const missing = (p.confirmed ? p.confirmed.missing : 0) + (p.pending ? p.pending.missing : 0);
    const text = `${num(missing)} missing rows with ${p.time_column || "time"} from ${plain(a)} to ${plain(b)}`;
    const t0 = parseTime(a), t1 = parseTime(b);
    if (t0 === null || t1 === null) return el("p", { class: "gap-text", text });
    const span = Math.max(t1 - t0, 60000);
    const lo = t0 - span / 2, hi = t1 + span / 2;
    const x = (t) => 10 + ((t - lo) / (hi - lo)) * (width - 20);
    const h = 46;
    return el("figure", { class: "gap-figure" },
      svg("svg", { class: "gap", width, height: h, viewBox: `0 0 ${width} ${h}`, role: "img", "aria-label": text },
        svg("title", { text }),
        svg("line", { class: "axis", x1: 10, y1: 24, x2: width - 10, y2: 24 }),
        svg("rect", { class: "window", x: x(t0), y: 16, width: Math.max(x(t1) - x(t0), 2), height: 16 }),
        svg("text", { x: x(t0), y: 44, "text-anchor": "middle", text: plain(a) }),
        svg("text", { x: x(t1), y: 11, "text-anchor": "middle", text: plain(b) })),
      el("figcaption", { class: "muted", text: `${text} (${age(t1 - t0)})` }));
  }

  /** fetch() with the API token when one is configured; asks for it on 401. */
  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const r = await fetch(path, { ...options, headers });
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken();
      throw new Error("the API token is missing or wrong");
    }
    if (!r.ok) {
      let message = `${r.status} ${r.statusText}`;
      try { message = (await r.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return r;
  }
  let onToken = () => {};
  function askToken() {
    const form = document.getElementById("auth");
    form.hidden = false;
    document.getElementById("token").focus();
  }
  document.getElementById("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("auth").hidden = true;
    onToken();
  });
  function problem(message) {
    const p = document.getElementById("problem");
    p.hidden = !message;
    p.textContent = message || "";
  }
  /** Calls `f` now and every `seconds` after it finished, while the tab is visible. */
  function every(seconds, f) {
    onToken = f;
    const loop = async () => {
      if (!document.hidden) await f();
      setTimeout(loop, seconds * 1000);
    };
    loop();
  }
  function updated() {
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString("en-GB")}`;
  }

  return {
    el, svg, put, num, age, ago, ORDER, category, badge, runbookLink, grafanaLink, tablePage, total, kinds,
    strip, sparkline, gapChart, api, problem, every, updated, tokenRequired, TOKEN_KEY,
    rowData: body.rowData === "true",
  };
})();

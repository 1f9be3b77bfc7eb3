// The overview: every table and subscriber, by severity, updated in place every few
// seconds from /api/v1/status (what a user opened stays open).
"use strict";

(() => {
  const { el, num, ago, category, badge, kinds } = DW;
  const table = document.getElementById("pairs");
  const bodies = new Map(); // pair id → its <tbody>
  let last = null;

  const id = (p) => JSON.stringify([p.group, p.table, p.subscriber]);
  const name = (p) => `${p.group}/${p.table}/${p.subscriber}`;

  function summary(data) {
    const pairs = data.tables;
    const count = {};
    for (const c of DW.ORDER) count[c] = 0;
    for (const p of pairs) count[category(p)]++;
    const schema = pairs.filter((p) => p.schema_mismatch).length;
    const tables = new Set(pairs.map((p) => `${p.group}\u0000${p.table}`)).size;
    const down = (data.databases || []).filter((d) => d.up === false).map((d) => d.name);
    const n = (k, v, text) => el("span", { "data-count": k }, el("span", { class: "n", text: num(v) }), ` ${text}`);
    const parts = [
      n("error", count.error, "error"), n("divergent", count.divergent, "divergent"),
      n("schema", schema, "schema differs"), n("pending", count.pending, "pending"),
    ];
    if (count.unknown) parts.push(n("unknown", count.unknown, "no pass yet"));
    parts.push(n("converged", count.converged, "converged"));
    const sep = (list) => list.flatMap((x, i) => (i ? [" · ", x] : [x]));
    DW.put(document.getElementById("summary"), 
      el("span", { "data-count": "tables" }, el("span", { class: "n", text: num(tables) }), ` table${tables === 1 ? "" : "s"}`),
      pairs.length !== tables ? ` (${num(pairs.length)} table/subscriber pairs)` : "",
      ": ", ...sep(parts), " · ",
      el("span", { "data-count": "down" }, down.length
        ? [el("span", { class: "n", text: num(down.length) }), ` database${down.length > 1 ? "s" : ""} down: ${down.join(", ")} `,
          el("a", { href: "/runbook#driftwatchdatabasedown", text: "runbook" })]
        : "databases down: none"));
  }

  function skeleton(p) {
    const tb = el("tbody", { "data-id": id(p), "data-name": name(p) });
    const main = el("tr", { class: "main" });
    for (let i = 0; i < 9; i++) main.append(el(i === 1 ? "th" : "td", i === 1 ? { scope: "row" } : {}));
    const details = el("details", {}, el("summary", { text: "details" }), el("div", { class: "detail-body" }));
    tb.append(main, el("tr", { class: "detail" }, el("td", { colspan: 9 }, details)));
    return tb;
  }

  function fill(tb, p) {
    const cat = category(p);
    const failed = p.state === "error";
    tb.dataset.state = cat;
    tb.dataset.group = p.group;
    tb.dataset.table = p.table;
    const c = tb.querySelector("tr.main").children;
    DW.put(c[0], badge(cat), p.schema_mismatch && cat !== "schema" ? [" ", badge("schema")] : null);
    DW.put(c[1], 
      el("a", { href: DW.tablePage(p), text: `${p.group}/${p.table}` }), ` → ${p.subscriber}`,
      p.error ? el("div", { class: "err", text: p.error }) : null);
    c[2].className = "num";
    DW.put(c[2], 
      failed && p.publisher_rows === null ? "–" : `${num(p.publisher_rows)} / ${num(p.subscriber_rows)}`,
      el("span", { class: "filter", text: p.filter ? `where ${p.filter}` : "no filter" }));
    // A failed pass shows no counts: the last good ones would read as current.
    DW.put(c[3], failed ? el("span", { class: "muted", title: "the last pass failed", text: "–" }) : kinds(p.confirmed));
    DW.put(c[4], failed ? el("span", { class: "muted", title: "the last pass failed", text: "–" }) : kinds(p.pending),
      !failed && p.in_flight && DW.total(p.in_flight) ? el("div", {}, "in flight: ", kinds(p.in_flight)) : null);
    DW.put(c[5], p.divergent_since ? ago(p.divergent_since, "") : el("span", { class: "muted", text: "–" }));
    DW.put(c[6], 
      failed ? el("div", {}, "failed ", ago(p.last_pass_end)) : null,
      failed ? el("div", { class: "muted" }, "last success ", ago(p.last_success)) : ago(p.last_success));
    DW.put(c[7], DW.strip(p));
    DW.put(c[8], DW.sparkline(p.history));
    DW.put(tb.querySelector(".detail-body"), ...detail(p, cat));
  }

  function detail(p, cat) {
    const out = [];
    const s = p.schema || {};
    if (p.schema_mismatch) {
      const list = (label, xs) => (xs && xs.length ? el("li", {}, `${label}: `, el("code", { text: xs.join(", ") })) : null);
      out.push(el("div", {}, "Schema differs:", el("ul", {},
        list("on the publisher only", s.publisher_only), list("on the subscriber only", s.subscriber_only),
        list("types", s.type_mismatch))));
    }
    const skipped = [...(s.unsupported || []), ...(s.excluded || [])];
    if (skipped.length) out.push(el("div", {}, "Not compared: ", el("code", { text: skipped.join(", ") })));
    const gap = DW.gapChart(p);
    if (gap) out.push(gap);
    if (p.sample && p.sample.length) {
      out.push(el("div", {}, `First differing rows (keys; the `, el("a", { href: DW.tablePage(p), text: "table page" }), " shows their values):",
        el("ul", {}, p.sample.map((r) => el("li", {},
          `${r.kind} `, el("span", { class: "key", text: `(${r.key.join(", ")})` }),
          r.changed_columns.length ? ` ${r.changed_columns.join(", ")}` : "", r.confirmed ? "" : " (pending)")))));
    }
    const facts = [];
    if (p.strategy) facts.push(`strategy ${p.strategy}`);
    if (p.compared_columns && p.compared_columns.length) facts.push(`${p.compared_columns.length} columns compared`);
    if (p.chunks_matched + p.chunks_mismatched) facts.push(`${num(p.chunks_mismatched)} of ${num(p.chunks_matched + p.chunks_mismatched)} chunks mismatched`);
    if (p.last_duration_seconds !== null && p.last_duration_seconds !== undefined) facts.push(`last pass took ${p.last_duration_seconds.toFixed(2)} s`);
    if (facts.length) out.push(el("div", { class: "muted", text: facts.join(" · ") }));
    out.push(el("div", { class: "links" },
      el("a", { href: DW.tablePage(p), text: "rows, schema and scripts" }),
      DW.grafanaLink(p), DW.runbookLink(cat, `runbook: ${cat}`)));
    return out;
  }

  function order(a, b) {
    const d = DW.ORDER.indexOf(category(a)) - DW.ORDER.indexOf(category(b));
    return d || a.group.localeCompare(b.group) || a.table.localeCompare(b.table) || a.subscriber.localeCompare(b.subscriber);
  }

  function applyFilters() {
    const state = document.getElementById("f-state").value;
    const group = document.getElementById("f-group").value;
    const search = document.getElementById("f-search").value.trim().toLowerCase();
    let shown = 0;
    for (const tb of bodies.values()) {
      const ok = (!state || tb.dataset.state === state || (state === "schema" && tb.querySelector('.badge[data-state="schema"]'))) &&
        (!group || tb.dataset.group === group) && (!search || tb.dataset.table.toLowerCase().includes(search));
      tb.hidden = !ok;
      if (ok) shown++;
    }
    document.getElementById("shown").textContent = `${shown} of ${bodies.size} shown`;
  }

  function render(data) {
    last = data;
    summary(data);
    const pairs = [...data.tables].sort(order);
    const seen = new Set();
    for (const p of pairs) {
      const k = id(p);
      seen.add(k);
      if (!bodies.has(k)) bodies.set(k, skeleton(p));
      const tb = bodies.get(k);
      fill(tb, p);
      table.append(tb); // moves an existing <tbody>: its open <details> stay open
    }
    for (const [k, tb] of bodies) if (!seen.has(k)) { tb.remove(); bodies.delete(k); }
    const groups = document.getElementById("f-group");
    const have = new Set([...groups.options].map((o) => o.value));
    for (const g of [...new Set(pairs.map((p) => p.group))].sort()) {
      if (!have.has(g)) groups.append(el("option", { value: g, text: g }));
    }
    applyFilters();
  }

  for (const f of ["f-state", "f-group", "f-search"]) {
    document.getElementById(f).addEventListener("input", applyFilters);
  }
  DW.every(5, async () => {
    try {
      const r = await DW.api("/api/v1/status");
      render(await r.json());
      DW.problem(null);
      DW.updated();
    } catch (e) {
      DW.problem(`Could not fetch the status: ${e.message}`);
      if (last) render(last);
    }
  });
})();

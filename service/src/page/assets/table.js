// A table's page: its state, schema differences, convergence scripts and its differing
// rows with both sides' values, paged (read on demand from the databases).
"use strict";

(() => {
  const { el, num, ago, category, badge, kinds } = DW;
  const [, , groupPart, tablePart] = location.pathname.split("/");
  const group = decodeURIComponent(groupPart);
  const table = decodeURIComponent(tablePart);
  const params = new URLSearchParams(location.search);
  let subscriber = params.get("subscriber");
  let kind = params.get("kind") || "";
  let offset = Number(params.get("offset")) || 0;
  const LIMIT = 50;
  let scriptsFor = null;

  document.getElementById("title").textContent = `${group}/${table}`;
  document.title = `driftwatch: ${group}/${table}`;
  for (const r of document.querySelectorAll('input[name="kind"]')) {
    r.checked = r.value === kind;
    r.addEventListener("change", () => { kind = r.value; offset = 0; loadRows(); });
  }
  document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); loadRows(); });
  document.getElementById("next").addEventListener("click", () => { offset += LIMIT; loadRows(); });

  function remember() {
    const q = new URLSearchParams({ subscriber });
    if (kind) q.set("kind", kind);
    if (offset) q.set("offset", offset);
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }

  function overview(p, all) {
    const cat = category(p);
    const failed = p.state === "error";
    const subs = all.map((x) => x.subscriber);
    const pick = subs.length > 1
      ? el("label", {}, "Subscriber ", el("select", {
          id: "subscriber",
          onchange: (e) => { subscriber = e.target.value; offset = 0; refresh().then(loadRows); },
        }, subs.map((s) => el("option", { value: s, selected: s === p.subscriber, text: s }))))
      : el("span", { text: p.subscriber });
    const dl = el("dl", {},
      el("dt", { text: "State" }), el("dd", {}, badge(cat), p.schema_mismatch && cat !== "schema" ? [" ", badge("schema")] : null,
        " ", DW.runbookLink(cat)),
      el("dt", { text: "Publisher → subscriber" }), el("dd", {}, `${p.publisher} → `, pick),
      el("dt", { text: "Rows" }), el("dd", {}, `publisher ${num(p.publisher_rows)}, subscriber ${num(p.subscriber_rows)}`,
        el("span", { class: "filter", text: p.filter ? `where ${p.filter}` : "no filter" })),
      el("dt", { text: "Confirmed" }), el("dd", {}, failed ? "–" : kinds(p.confirmed)),
      el("dt", { text: "Pending" }), el("dd", {}, failed ? "–" : kinds(p.pending)),
      p.in_flight ? [el("dt", { text: "In flight" }), el("dd", {}, kinds(p.in_flight))] : null,
      el("dt", { text: "Divergent since" }), el("dd", {}, p.divergent_since ? ago(p.divergent_since, "") : "–"),
      el("dt", { text: "Last successful pass" }), el("dd", {}, ago(p.last_success)),
      p.error ? [el("dt", { text: "Error" }), el("dd", { class: "err", text: p.error })] : null,
      el("dt", { text: "Links" }), el("dd", { class: "links" }, el("a", { href: "/", text: "all tables" }), DW.grafanaLink(p)));
    const pictures = el("div", {},
      el("div", {}, "Key space (publisher rows in key order, mismatched chunks and buckets marked):", DW.strip(p, 600)),
      el("div", {}, "Divergent rows over the last passes:", DW.sparkline(p.history, 300)),
      DW.gapChart(p, 600));
    DW.put(document.getElementById("pair"), el("div", { class: "pair-head" }, dl, pictures));
  }

  function schema(p) {
    const s = p.schema || {};
    const rows = [];
    const split = (x) => { const i = x.indexOf(": "); return i < 0 ? [x, ""] : [x.slice(0, i), x.slice(i + 2)]; };
    for (const c of s.publisher_only || []) rows.push([c, "present", "absent", "not on the subscriber: not compared"]);
    for (const c of s.subscriber_only || []) rows.push([c, "absent", "present", "not on the publisher: not compared"]);
    for (const x of s.type_mismatch || []) { const [c, why] = split(x); rows.push([c, "present", "present", `types differ: ${why}`]); }
    for (const x of s.unsupported || []) rows.push([x, "present", "present", "a type driftwatch does not compare: skipped"]);
    for (const c of s.excluded || []) rows.push([c, "", "", "excluded by the config"]);
    const compared = el("p", { class: "muted", text: `${(p.compared_columns || []).length} columns compared: ${(p.compared_columns || []).join(", ")}` });
    if (!rows.length) {
      DW.put(document.getElementById("schema"), el("p", { text: p.state === "unknown" ? "No pass yet." : "None." }), compared);
      return;
    }
    DW.put(document.getElementById("schema"), 
      el("table", { class: "schema-table" },
        el("thead", {}, el("tr", {}, ["Column", "Publisher", "Subscriber", "What it means"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", { text: v })))))),
      compared);
  }

  function scripts(p) {
    const key = JSON.stringify([p.group, p.table, p.subscriber]);
    if (scriptsFor === key) return; // built once: a download in progress keeps its button
    scriptsFor = key;
    const box = document.getElementById("scripts");
    const status = el("p", { class: "muted", role: "status", "aria-live": "polite" });
    const dialects = [["tsql", "T-SQL"], ["postgres", "PostgreSQL"], ["mysql", "MySQL"], ["sqlite", "SQLite"]];
    const cells = [];
    for (const mode of ["fix", "redrive"]) {
      cells.push(el("span", { text: mode }));
      for (const [d, label] of dialects) {
        const url = `/api/v1/groups/${encodeURIComponent(p.group)}/tables/${encodeURIComponent(p.table)}/script` +
          `?subscriber=${encodeURIComponent(p.subscriber)}&dialect=${d}&mode=${mode}`;
        cells.push(el("button", {
          type: "button", "data-mode": mode, "data-dialect": d, disabled: !DW.rowData,
          title: DW.rowData ? `download the ${mode} script in ${label}` : "scripts carry row data: this server needs an API token for them",
          onclick: (e) => download(e.target, url, `${mode} script (${label})`, status),
          text: label,
        }));
      }
    }
    DW.put(box, ...cells);
    box.after(status);
  }

  async function download(button, url, what, status) {
    button.disabled = true;
    status.textContent = `running a fresh diff for the ${what}…`;
    try {
      if (!sessionStorage.getItem(DW.TOKEN_KEY)) {
        // No token: let the browser stream it (a broken transfer shows as a failed download).
        el("a", { href: url, download: "" }).click();
        status.textContent = `${what}: download started`;
      } else {
        const r = await DW.api(url);
        const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
        const blob = await r.blob();
        const a = el("a", { href: URL.createObjectURL(blob), download: name ? name[1] : "driftwatch.sql" });
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 60000);
        status.textContent = `${what}: downloaded`;
      }
    } catch (e) {
      status.textContent = `${what} failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function cell(c, other) {
    if (!c) return el("span", { class: "muted", text: "(no row)" });
    const showLength = c.cut || (other && other.length !== c.length && !c.null && !other.null);
    return el("span", {},
      el("span", { class: c.null ? "val null" : "val", text: c.text }),
      showLength ? el("span", { class: "len", text: ` ${c.cut ? "cut; " : ""}${num(c.length)} ${c.unit}` }) : null);
  }

  function rowView(r, keyColumns) {
    const changed = r.values.filter((v) => v.changed);
    const all = el("details", {}, el("summary", { text: "all columns" }),
      el("table", { class: "cols" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "column" }), el("th", { scope: "col", text: "publisher" }), el("th", { scope: "col", text: "subscriber" }))),
        el("tbody", {}, r.values.map((v) => el("tr", {},
          el("th", { scope: "row", text: v.column }),
          el("td", { class: v.changed ? "changed-col" : null }, cell(v.publisher, v.subscriber)),
          el("td", { class: v.changed ? "changed-col" : null }, cell(v.subscriber, v.publisher)))))));
    let what;
    if (r.kind === "changed") {
      what = el("table", { class: "cols changed" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "changed column" }), el("th", { scope: "col", text: "publisher" }), el("th", { scope: "col", text: "subscriber" }))),
        el("tbody", {}, changed.map((v) => el("tr", { "data-column": v.column },
          el("th", { scope: "row", text: v.column }),
          el("td", { class: "changed-col pub" }, cell(v.publisher, v.subscriber)),
          el("td", { class: "changed-col sub" }, cell(v.subscriber, v.publisher))))));
    } else {
      what = el("span", { text: r.kind === "missing" ? "on the publisher only" : "on the subscriber only" });
    }
    return el("tr", { "data-kind": r.kind, "data-key": r.key.join(",") },
      el("td", {}, el("span", { class: `badge ${r.kind === "changed" ? "pending" : r.kind === "missing" ? "divergent" : "schema"}`, text: r.kind })),
      el("td", { class: "key", title: keyColumns.join(", "), text: r.key.join(", ") }),
      el("td", {}, what, all));
  }

  async function loadRows() {
    remember();
    const box = document.getElementById("rows");
    const range = document.getElementById("range");
    if (!DW.rowData) {
      DW.put(box, el("p", { text: "Rows carry row data: this server shows them only on loopback or with an API token (server.api_token_file)." }));
      return;
    }
    range.textContent = "reading rows from both databases…";
    const q = new URLSearchParams({ subscriber, offset, limit: LIMIT });
    if (kind) q.set("kind", kind);
    try {
      const r = await DW.api(`/api/v1/groups/${encodeURIComponent(group)}/tables/${encodeURIComponent(table)}/rows?${q}`);
      const page = await r.json();
      const what = page.kind ? `${page.kind} rows` : "differing rows";
      range.textContent = page.total === 0
        ? `no ${what}`
        : `${what} ${num(page.offset + 1)}–${num(page.offset + page.rows.length)} of ${num(page.total)}`;
      if (page.rows.length < Math.min(LIMIT, Math.max(0, page.total - page.offset))) {
        range.textContent += " (fewer now: some were fixed or changed since the pass)";
      }
      document.getElementById("prev").disabled = page.offset === 0;
      document.getElementById("next").disabled = page.offset + LIMIT >= page.total;
      DW.put(box, 
        page.unlisted ? el("p", { class: "muted", text: `${num(page.unlisted)} more rows were counted past the cap on kept ranges and cannot be listed.` }) : "",
        el("table", { class: "rows-table" },
          el("thead", {}, el("tr", {},
            el("th", { scope: "col", text: "Kind" }),
            el("th", { scope: "col", text: `Key (${page.key_columns.join(", ")})` }),
            el("th", { scope: "col", text: "Publisher vs subscriber" }))),
          el("tbody", {}, page.rows.map((x) => rowView(x, page.key_columns)))));
      DW.problem(null);
    } catch (e) {
      range.textContent = "";
      DW.put(box, el("p", { class: "err", text: `Could not read the rows: ${e.message}` }));
    }
  }

  async function refresh() {
    try {
      const r = await DW.api("/api/v1/status");
      const data = await r.json();
      const all = data.tables.filter((p) => p.group === group && p.table === table);
      if (!all.length) throw new Error(`no table ${table} in group ${group}`);
      const p = all.find((x) => x.subscriber === subscriber) || all[0];
      subscriber = p.subscriber;
      overview(p, all);
      schema(p);
      scripts(p);
      DW.problem(null);
      DW.updated();
      return true;
    } catch (e) {
      DW.problem(`Could not fetch the status: ${e.message}`);
      return false;
    }
  }

  let first = true;
  DW.every(5, async () => {
    // The rows wait for the status (and so for the token, when one is needed).
    if ((await refresh()) && first) { first = false; loadRows(); }
  });
})();

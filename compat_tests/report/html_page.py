"""The page template. Everything inline (no fonts, scripts or styles fetched), so the file opens from disk
with no network; the data goes in as JSON inside a script element the page reads on load.

The script draws the matrix from the data and the page's state (filters, expanded paths) every time either
changes, so a filter hides whole rows and columns rather than dimming cells one by one."""

CSS = """
:root { --passed:#2e7d32; --failed:#c62828; --error:#6a1b9a; --skipped:#9e9e9e; --xfailed:#ef6c00;
        --xpassed:#0277bd; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; height: 100vh; display: flex;
       flex-direction: column; }
header { padding: 8px 16px; background: #f5f5f5; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 4px; }
.counts span { margin-right: 12px; }
.filters { display: flex; flex-wrap: wrap; gap: 12px; padding: 6px 16px; border-bottom: 1px solid #ddd; }
.filters label { font-size: 12px; color: #555; }
main { display: flex; flex: 1 1 auto; min-height: 0; }
#matrix-wrap { overflow: auto; flex: 1 1 auto; min-width: 0; }
#matrix { border-collapse: separate; border-spacing: 0; font-size: 12px; }
#matrix th, #matrix td { border: solid #e0e0e0; border-width: 0 1px 1px 0; padding: 1px 3px; white-space: nowrap; }
#matrix thead { position: sticky; top: 0; z-index: 3; }
#matrix thead th { background: #fafafa; vertical-align: bottom; }
#matrix th.model { text-align: left; position: sticky; left: 0; z-index: 2; background: #fff; max-width: 240px;
                   overflow: hidden; text-overflow: ellipsis; }
#matrix thead th.model { background: #fafafa; }
#matrix td.family { color: #666; max-width: 80px; overflow: hidden; text-overflow: ellipsis; }
th.path button { font: inherit; font-weight: 600; color: #222; background: none; border: 0; padding: 2px 0;
                 cursor: pointer; }
th.path.collapsed button { writing-mode: vertical-rl; transform: rotate(180deg); }
th.path.collapsed button[data-overrides]::after { content: " +" attr(data-overrides); color: #888; }
th.path.expanded button::after { content: " \\2212"; color: #888; }
#matrix thead th.expanded, #matrix thead th.override { background: #eef3fb; }
th.override span { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; }
#matrix .first { border-left: 2px solid #7a8fb0; }
td.cell { min-width: 18px; text-align: center; cursor: pointer; color: #fff; font-weight: 600; }
td.cell.dim { opacity: 0.2; }
td.cell.selected { outline: 3px solid #000; outline-offset: -2px; }
.s-passed { background: var(--passed); } .s-failed { background: var(--failed); }
.s-error { background: var(--error); } .s-skipped { background: var(--skipped); }
.s-xfailed { background: var(--xfailed); } .s-xpassed { background: var(--xpassed); }
#matrix tr.group th { text-align: left; background: #ececec; padding: 4px 3px; }
#matrix tr.group th span { position: sticky; left: 4px; }
.legend span { display: inline-block; padding: 0 6px; color: #fff; border-radius: 3px; margin-right: 4px; }
#details { flex: 0 0 min(38%, 640px); overflow: auto; padding: 8px 16px; border-left: 1px solid #ddd;
           box-sizing: border-box; }
#details h2 { font-size: 16px; word-break: break-all; }
#details pre { background: #f7f7f7; padding: 8px; overflow: auto; max-height: 50vh; font-size: 11px;
               white-space: pre-wrap; overflow-wrap: anywhere; }
#details dt { font-weight: 600; } #details dd { margin: 0 0 6px 0; word-break: break-word; }
#details code#repro { display: block; background: #f7f7f7; padding: 6px 8px; user-select: all;
                      overflow-wrap: anywhere; }
#siblings { list-style: none; padding: 0; margin: 0 0 8px; }
#siblings button { font: inherit; font-size: 12px; background: none; border: 0; padding: 1px 2px; cursor: pointer;
                   text-align: left; }
#siblings button[aria-current="true"] { font-weight: 700; }
.swatch { display: inline-block; width: 14px; color: #fff; text-align: center; border-radius: 2px;
          margin-right: 4px; }
.hint { color: #777; }
[hidden] { display: none !important; }
/* whole pixels: a fractional header leaves the matrix's last row a fraction of a pixel out of sight */
#tabs { margin-top: 6px; height: 24px; }
#tabs button { font: inherit; line-height: 18px; border: 1px solid #bbb; background: #fff; padding: 2px 10px;
               cursor: pointer; }
#tabs button[aria-selected="true"] { background: #333; color: #fff; border-color: #333; }
#xv-total { flex-basis: 100%; }
#xv-wrap { overflow: auto; flex: 1 1 auto; min-width: 0; }
#xv { border-collapse: separate; border-spacing: 0; font-size: 12px; }
#xv th, #xv td { border: solid #e0e0e0; border-width: 0 1px 1px 0; padding: 1px 3px; white-space: nowrap; }
#xv thead { position: sticky; top: 0; z-index: 3; }
#xv thead th { background: #fafafa; vertical-align: bottom; }
#xv th.model { text-align: left; position: sticky; left: 0; z-index: 2; background: #fff; max-width: 240px;
               overflow: hidden; text-overflow: ellipsis; }
#xv thead th.model { background: #fafafa; }
#xv td.tags { text-align: right; color: #444; }
#xv td.none { text-align: center; color: #bbb; }
.xv-record { margin: 0 0 10px; }
.xv-record p { margin: 2px 0 2px 18px; word-break: break-word; }
"""

JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SYMBOL = {passed: "\u2713", failed: "\u2717", error: "E", skipped: "s", xfailed: "x", xpassed: "X"};
  const records = data.records;
  const rank = new Map(data.worst_first.map((s, i) => [s, i]));
  const rankOf = s => rank.has(s) ? rank.get(s) : rank.size;
  const worst = rs => rs.reduce((a, b) => rankOf(b.status) < rankOf(a.status) ? b : a);

  // The page stores shared values once and leaves empty fields out; restore each record's full shape.
  const withPairs = (inline, shared) => {
    if (!shared) return inline;
    const all = Object.entries(inline || {}).concat(shared.map(i => data.pairs[i]));
    return Object.fromEntries(all.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  };
  const byId = new Map();
  const cells = new Map();  // model -> path -> records, in report order
  const overridesOf = new Map(data.paths.map(p => [p, []]));  // path -> overrides, first seen first
  for (const r of records) {
    r.model = data.names[r.model];
    r.path = data.names[r.path];
    r.override = data.names[r.override];
    r.id = r.id || r.model + "-" + r.path + "-" + r.override + (r.meta ? "@meta" : "");
    r.versions = data.versions[r.versions] || {};
    r.run_id = data.runs[r.run];
    r.known = r.known === undefined ? {} : data.known[r.known];
    r.signature = r.signature || "";
    r.duration_s = r.duration_s || 0;
    r.override_kwargs = withPairs(r.override_kwargs, r.kwargs_shared);
    if (r.extra_shared) r.evidence = Object.assign(r.evidence || {}, {extra: withPairs((r.evidence || {}).extra,
                                                                                       r.extra_shared)});
    byId.set(r.id, r);
    if (!cells.has(r.model)) cells.set(r.model, new Map());
    const paths = cells.get(r.model);
    if (!paths.has(r.path)) paths.set(r.path, []);
    paths.get(r.path).push(r);
    const overrides = overridesOf.get(r.path);
    if (!overrides.includes(r.override)) overrides.push(r.override);
  }
  const groupOf = new Map();
  data.groups.forEach((g, i) => g.statuses.forEach(s => groupOf.set(s, i)));
  const modelGroup = new Map();
  for (const [m, paths] of cells) {
    const all = Array.from(paths.values()).flat();
    const g = groupOf.get(worst(all).status);
    modelGroup.set(m, g === undefined ? data.groups.length - 1 : g);
  }
  const models = Array.from(cells.keys()).sort((a, b) =>
    modelGroup.get(a) - modelGroup.get(b) || (a < b ? -1 : a > b ? 1 : 0));

  const expanded = new Set();
  let selected = null;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fillSelect(id, values) {
    const select = document.getElementById(id);
    for (const v of values) select.appendChild(el("option", {value: v}, v));
    select.addEventListener("change", draw);
  }
  const uniq = f => Array.from(new Set(records.map(f))).filter(x => x !== "").sort();
  fillSelect("f-family", uniq(r => data.family[r.model] || ""));
  fillSelect("f-path", data.paths);
  fillSelect("f-status", data.statuses.filter(s => records.some(r => r.status === s)));
  fillSelect("f-signature", uniq(r => r.signature));
  document.getElementById("f-model").addEventListener("input", draw);

  const value = id => document.getElementById(id).value;
  const thead = document.querySelector("#matrix thead");
  const tbody = document.querySelector("#matrix tbody");
  let rowOf = new Map();

  function draw() {
    const family = value("f-family"), path = value("f-path"), status = value("f-status");
    const signature = value("f-signature"), text = value("f-model").trim().toLowerCase();
    // A row or column is shown only if some cell in it matches every filter.
    const paths = new Set(), columns = new Set(), shownModels = new Set();
    for (const r of records) {
      r.match = (family === "" || data.family[r.model] === family) && (path === "" || r.path === path) &&
                (status === "" || r.status === status) && (signature === "" || r.signature === signature) &&
                (text === "" || r.model.toLowerCase().includes(text));
      if (r.match) { paths.add(r.path); columns.add(r.path + "/" + r.override); shownModels.add(r.model); }
    }
    const cols = [];
    for (const p of data.paths) {
      if (!paths.has(p)) continue;
      if (!expanded.has(p)) { cols.push({path: p, override: null, key: p, first: false}); continue; }
      const shown = overridesOf.get(p).filter(o => columns.has(p + "/" + o));
      shown.forEach((o, i) => cols.push({path: p, override: o, key: p + "/" + o, first: i === 0}));
    }

    const top = el("tr"), bottom = el("tr");
    top.appendChild(el("th", {class: "model", rowspan: 2}, "model"));
    top.appendChild(el("th", {rowspan: 2}, "family"));
    for (const p of data.paths.filter(q => paths.has(q))) {
      const open = expanded.has(p);
      const mine = cols.filter(c => c.path === p);
      const count = overridesOf.get(p).length;
      const th = el("th", open ? {class: "path expanded first", colspan: mine.length, "data-path": p}
                                : {class: "path collapsed", rowspan: 2, "data-path": p});
      const button = el("button", {type: "button", "aria-expanded": open, title: open
        ? "click to show one column for " + p : "click to show one column per override (" + count + ")"}, p);
      if (count > 1) button.dataset.overrides = count;
      th.appendChild(button);
      top.appendChild(th);
      if (open) {
        for (const c of mine) {
          const o = el("th", {class: "override" + (c.first ? " first" : ""), "data-path": p, "data-col": c.key,
                              title: c.key});
          o.appendChild(el("span", {}, c.override));
          bottom.appendChild(o);
        }
      }
    }
    thead.replaceChildren(top, bottom);

    const body = document.createDocumentFragment();
    rowOf = new Map();
    let group = -1, shown = 0;
    for (const m of models) {
      if (!shownModels.has(m)) continue;
      if (modelGroup.get(m) !== group) {
        group = modelGroup.get(m);
        const size = models.filter(n => shownModels.has(n) && modelGroup.get(n) === group).length;
        const tr = el("tr", {class: "group", "data-group": data.groups[group].label});
        const th = el("th", {colspan: cols.length + 2});
        const label = data.groups[group].label + " \u00b7 " + size + (size === 1 ? " model" : " models");
        th.appendChild(el("span", {}, label));
        tr.appendChild(th);
        body.appendChild(tr);
      }
      shown++;
      const tr = el("tr", {"data-model": m, "data-family": data.family[m] || ""});
      tr.appendChild(el("th", {class: "model", title: m}, m));
      tr.appendChild(el("td", {class: "family"}, data.family[m] || ""));
      const byPath = cells.get(m);
      for (const c of cols) {
        const all = (byPath.get(c.path) || []).filter(r => c.override === null || r.override === c.override);
        const first = c.first ? " first" : "";
        if (!all.length) {
          tr.appendChild(el("td", {class: first.trim(), "data-path": c.path, "data-col": c.key}));
          continue;
        }
        const hits = all.filter(r => r.match);
        const r = worst(hits.length ? hits : all);
        let title = r.id + ": " + r.status + (r.signature ? " [" + r.signature + "]" : "");
        if (all.length > 1) {
          const tally = new Map();
          for (const s of all) tally.set(s.status, (tally.get(s.status) || 0) + 1);
          title += "\n" + all.length + " overrides: " + Array.from(tally, ([s, n]) => n + " " + s).join(", ");
        }
        tr.appendChild(el("td", {class: "cell s-" + r.status + (hits.length ? "" : " dim") + first,
                                 "data-path": c.path, "data-col": c.key, "data-id": r.id, "data-status": r.status,
                                 "data-signature": r.signature, title: title}, SYMBOL[r.status] || "?"));
      }
      body.appendChild(tr);
      rowOf.set(m, tr);
    }
    tbody.replaceChildren(body);
    document.getElementById("shown").textContent = shown + " of " + models.length + " models shown";
    markSelected();
  }

  function markSelected() {
    for (const s of tbody.querySelectorAll("td.selected")) s.classList.remove("selected");
    if (!selected || !rowOf.has(selected.model)) return;
    const tds = Array.from(rowOf.get(selected.model).querySelectorAll("td.cell"));
    const td = tds.find(t => t.dataset.id === selected.id) || tds.find(t => t.dataset.col === selected.path);
    if (td) td.classList.add("selected");
  }

  thead.addEventListener("click", event => {
    const th = event.target.closest("th.path");
    if (!th) return;
    const p = th.dataset.path;
    if (expanded.has(p)) expanded.delete(p); else expanded.add(p);
    draw();
  });
  tbody.addEventListener("click", event => {
    const td = event.target.closest("td.cell");
    if (td) show(byId.get(td.dataset.id));
  });

  // Shell-quoted unless it is plainly safe (ids are; a report path may hold spaces).
  const quote = s => /^[\w.=+@\/:,-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";

  function show(r) {
    selected = r;
    markSelected();
    const box = document.getElementById("details");
    box.replaceChildren();
    box.appendChild(el("h2", {}, r.id));
    const siblings = cells.get(r.model).get(r.path);
    if (siblings.length > 1) {
      box.appendChild(el("h3", {}, r.path + ": " + siblings.length + " overrides, worst first"));
      const list = el("ul", {id: "siblings"});
      for (const s of siblings.slice().sort((a, b) => rankOf(a.status) - rankOf(b.status))) {
        const button = el("button", {type: "button", "data-id": s.id, "aria-current": s === r});
        button.appendChild(el("span", {class: "swatch s-" + s.status}, SYMBOL[s.status] || "?"));
        const said = s.override + ": " + s.status + (s.signature ? " [" + s.signature + "]" : "");
        button.appendChild(document.createTextNode(said));
        button.addEventListener("click", () => show(s));
        const li = el("li");
        li.appendChild(button);
        list.appendChild(li);
      }
      box.appendChild(list);
    }
    const dl = el("dl");
    const sig = data.signatures[r.signature] || {};
    const rows = [["status", r.status], ["signature", r.signature || "\u2014"], ["explains", sig.explains],
                  ["fix", sig.fix], ["message", r.message], ["versions",
                  Object.entries(r.versions).filter(kv => kv[1]).map(kv => kv[0] + " " + kv[1]).join(", ")],
                  ["override", Object.keys(r.override_kwargs || {}).length ? r.override + " " +
                    JSON.stringify(r.override_kwargs) : r.override],
                  ["known failure", r.known.reason ? r.known.reason + " (upstream: " + r.known.upstream + ")" : ""],
                  ["behind it", r.behind ? "with " + r.behind.workaround + ": " + r.behind.status +
                    (r.behind.signature ? " [" + r.behind.signature + "]" : "") + " (known: " +
                    [r.behind.front.signature, ...(r.behind.through || []).map(t => t.signature)].join(", then ") +
                    ")" : ""],
                  ["duration", r.duration_s + " s"], ["run", r.run_id]];
    for (const [k, v] of rows) {
      if (!v) continue;
      dl.appendChild(el("dt", {}, k));
      dl.appendChild(el("dd", {"data-field": k}, v));
    }
    box.appendChild(dl);
    box.appendChild(el("h3", {}, "repro"));
    const command = "timm-compat repro " + quote(r.id) + " --report " + data.report;
    if (r.has_repro) {
      box.appendChild(el("p", {class: "hint"}, "The report holds this cell's standalone repro script; print it with:"));
      box.appendChild(el("code", {id: "repro"}, command));
    } else if (r.status === "error" || r.status === "skipped") {
      box.appendChild(el("p", {class: "hint"}, "No repro: the cell was " + r.status + ", so no load ran."));
    } else {
      box.appendChild(el("p", {class: "hint"}, "No repro recorded (the cell did not fail); this builds one " +
                                                "(needs torch and timm):"));
      box.appendChild(el("code", {id: "repro"}, command));
    }
    if (r.evidence && Object.keys(r.evidence).length) {
      box.appendChild(el("h3", {}, "evidence"));
      box.appendChild(el("p", {class: "hint"}, "Empty fields left out, long texts and lists cut; counts are exact " +
                                                "and the report file holds the rest."));
      box.appendChild(el("pre", {id: "evidence"}, JSON.stringify(r.evidence, null, 1)));
    }
  }
  // The cross-version tab: architectures x the releases that wrote their files. A row holds one status
  // character per release and, for each record behind its cells, [record index, kind index, release
  // indices...]: the page builds the cells itself, and a cell's tooltip only when the pointer reaches it.
  function crossVersion(xv) {
    const table = document.getElementById("xv"), tbody = table.tBodies[0];
    const failing = new Set(xv.failing);
    const statusAt = c => data.worst_first[+c] || "?";
    const rows = xv.rows.map(([model, tags, statuses, covers]) => ({model, tags, statuses, covers,
      failing: Array.from(statuses).some(c => c !== "." && failing.has(statusAt(c)))}));
    const rowByModel = new Map(rows.map(row => [row.model, row]));
    // The records behind one cell, worst first, each with its kind of file.
    const behind = (row, j) => row.covers.filter(c => c.indexOf(j, 2) !== -1)
      .map(c => ({r: records[c[0]], kind: xv.kinds[c[1]], by: c.slice(2).map(k => xv.producers[k])}))
      .sort((a, b) => rankOf(a.r.status) - rankOf(b.r.status));
    const said = b => b.kind + ": " + b.r.status + (b.r.signature ? " [" + b.r.signature + "]" : "");

    const top = el("tr");
    top.appendChild(el("th", {class: "model"}, "architecture"));
    top.appendChild(el("th", {class: "tags", title: "published weights of the architecture (timm.list_pretrained)"},
                       "pretrained tags"));
    for (const p of xv.producers) {
      const th = el("th", {class: "override", "data-producer": p, title: "files " + p + " wrote"});
      th.appendChild(el("span", {}, p));
      top.appendChild(th);
    }
    table.tHead.replaceChildren(top);

    let selectedCell = null;
    function drawCross() {
      const text = document.getElementById("xv-model").value.trim().toLowerCase();
      const failingOnly = document.getElementById("xv-failing").checked;
      const body = document.createDocumentFragment();
      let shown = 0;
      for (const row of rows) {
        if ((failingOnly && !row.failing) || (text && !row.model.toLowerCase().includes(text))) continue;
        shown++;
        const tr = el("tr", {"data-model": row.model});
        tr.appendChild(el("th", {class: "model", title: row.model}, row.model));
        tr.appendChild(el("td", {class: "tags"}, row.tags === null ? "?" : String(row.tags)));
        for (let j = 0; j < xv.producers.length; j++) {
          const c = row.statuses[j];
          if (c === ".") {
            tr.appendChild(el("td", {class: "none", "data-col": j, title: xv.producers[j] + " wrote no file for it"},
                              "\u2013"));
            continue;
          }
          const s = statusAt(c);
          const attrs = {class: "cell s-" + s, "data-col": j, "data-status": s};
          // Failing cells are few: they carry their signatures, so a search of the page finds them.
          if (failing.has(s)) attrs["data-signature"] = Array.from(new Set(behind(row, j)
            .filter(b => failing.has(b.r.status)).map(b => b.r.signature || b.r.status))).join(",");
          if (selectedCell && selectedCell[0] === row.model && selectedCell[1] === j) attrs.class += " selected";
          tr.appendChild(el("td", attrs, SYMBOL[s] || "?"));
        }
        body.appendChild(tr);
      }
      tbody.replaceChildren(body);
      document.getElementById("xv-shown").textContent = shown + " of " + rows.length + " architectures shown";
    }
    const cellOf = target => {
      const td = target.closest("td.cell");
      return td && tbody.contains(td) ? [td, rowByModel.get(td.parentElement.dataset.model), +td.dataset.col] : null;
    };
    tbody.addEventListener("mouseover", event => {
      const hit = cellOf(event.target);
      if (!hit || hit[0].title) return;
      const [td, row, j] = hit;
      td.title = row.model + " as " + xv.producers[j] + " wrote it:\n" + behind(row, j).map(b => said(b) +
        (b.r.message ? " \u2014 " + b.r.message.slice(0, 200) : "")).join("\n");
    });
    tbody.addEventListener("click", event => {
      const hit = cellOf(event.target);
      if (!hit) return;
      const [td, row, j] = hit;
      for (const s of tbody.querySelectorAll("td.selected")) s.classList.remove("selected");
      td.classList.add("selected");
      selectedCell = [row.model, j];
      const box = document.getElementById("details");
      box.replaceChildren(el("h2", {}, row.model + " \u00b7 " + xv.producers[j]));
      box.appendChild(el("p", {class: "hint"}, "The files " + xv.producers[j] + " wrote for it, loaded by the " +
                                               "installed releases; worst first:"));
      for (const b of behind(row, j)) {
        const div = el("div", {class: "xv-record", "data-id": b.r.id});
        const head = el("div");
        head.appendChild(el("span", {class: "swatch s-" + b.r.status}, SYMBOL[b.r.status] || "?"));
        head.appendChild(el("b", {}, said(b)));
        div.appendChild(head);
        if (b.r.message) div.appendChild(el("p", {"data-field": "message"}, b.r.message));
        if (b.by.length > 1) div.appendChild(el("p", {class: "hint"}, "one file, written alike by " + b.by.join(", ")));
        const more = el("button", {type: "button"}, "full record: " + b.r.id);
        more.addEventListener("click", () => show(b.r));
        div.appendChild(more);
        box.appendChild(div);
      }
    });
    document.getElementById("xv-model").addEventListener("input", drawCross);
    document.getElementById("xv-failing").addEventListener("change", drawCross);
    return drawCross;
  }

  // Two tabs share the details pane; the cross-version one is drawn the first time it is opened.
  const tabs = document.getElementById("tabs");
  if (data.cross_version && tabs) {
    const drawCross = crossVersion(data.cross_version);
    const matrixHint = document.querySelector("#details .hint").textContent;
    const crossHint = "Each cell is the worst over the kinds of file (" + data.cross_version.kinds.join(", ") +
      ") a release wrote for the architecture, loaded by the installed releases; \u2013: it wrote none. " +
      "Click a cell for the records behind it.";
    let crossDrawn = false;
    const open = name => {
      for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-selected", b.dataset.tab === name);
      const cross = name === "cross-version";
      document.getElementById("matrix-filters").hidden = cross;
      document.getElementById("matrix-wrap").hidden = cross;
      document.getElementById("xv-filters").hidden = !cross;
      document.getElementById("xv-wrap").hidden = !cross;
      if (cross && !crossDrawn) { drawCross(); crossDrawn = true; }
      // Until a cell is chosen, the pane says how to read the tab in view.
      const box = document.getElementById("details");
      if (!box.querySelector("h2")) box.replaceChildren(el("p", {class: "hint"}, cross ? crossHint : matrixHint));
    };
    tabs.addEventListener("click", event => {
      const button = event.target.closest("button[data-tab]");
      if (button) open(button.dataset.tab);
    });
    if (location.hash === "#cross-version") open("cross-version");  // a link straight to the tab
  }

  draw();
  document.body.dataset.ready = "1";
})();
"""

# The cross-version tab, present only when the report has cross_version records.
TABS = """<nav id="tabs"><button type="button" data-tab="matrix" aria-selected="true">models × loading paths</button>
<button type="button" data-tab="cross-version" aria-selected="false">cross-version · {failing} failing
architecture(s)</button></nav>"""
CROSS_FILTERS = """<div class="filters" id="xv-filters" hidden>
<div><label for="xv-model">architecture contains</label><br><input id="xv-model" type="search"></div>
<div><br><label><input id="xv-failing" type="checkbox"> failing only</label></div>
<div><br><span id="xv-shown"></span></div>
<div id="xv-total">{total}</div>
</div>"""
CROSS_TABLE = """<div id="xv-wrap" hidden><table id="xv"><thead></thead><tbody></tbody></table></div>"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div>{versions}</div>
<div class="counts">{counts}</div>
<div class="legend">worst first: {legend}</div>
{tabs}
</header>
<div class="filters" id="matrix-filters">
<div><label for="f-family">family</label><br><select id="f-family"><option value="">all</option></select></div>
<div><label for="f-path">path</label><br><select id="f-path"><option value="">all</option></select></div>
<div><label for="f-status">status</label><br><select id="f-status"><option value="">all</option></select></div>
<div><label for="f-signature">signature</label><br>
<select id="f-signature"><option value="">all</option></select></div>
<div><label for="f-model">model contains</label><br><input id="f-model" type="search"></div>
<div><br><span id="shown"></span></div>
</div>
{cross_filters}
<main>
<div id="matrix-wrap"><table id="matrix"><thead></thead><tbody></tbody></table></div>
{cross_table}
<aside id="details"><p class="hint">Each cell shows the worst of a model's overrides on that path; click a path's
header for one column per override, and a cell for its message, versions, evidence and repro command.</p></aside>
</main>
<script id="report-data" type="application/json">{data}</script>
<script>{js}</script>
</body>
</html>
"""

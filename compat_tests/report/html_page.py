"""The page template. Everything inline (no fonts, scripts or styles fetched), so the file opens from disk
with no network; the data goes in as JSON inside a script element the page reads on load."""

CSS = """
:root { --passed:#2e7d32; --failed:#c62828; --error:#6a1b9a; --skipped:#9e9e9e; --xfailed:#ef6c00;
        --xpassed:#0277bd; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 12px 16px; background: #f5f5f5; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 4px; }
.counts span { margin-right: 12px; }
.filters { display: flex; flex-wrap: wrap; gap: 12px; padding: 8px 16px; border-bottom: 1px solid #ddd; }
.filters label { font-size: 12px; color: #555; }
main { display: flex; align-items: flex-start; }
#matrix-wrap { overflow: auto; flex: 1 1 auto; max-height: calc(100vh - 130px); }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #e0e0e0; padding: 2px 4px; white-space: nowrap; }
thead th { position: sticky; top: 0; background: #fafafa; z-index: 1; }
th.model { text-align: left; position: sticky; left: 0; background: #fff; }
td.cell { width: 22px; text-align: center; cursor: pointer; color: #fff; font-weight: 600; }
td.cell.dim { opacity: 0.2; }
td.cell.selected { outline: 3px solid #000; }
td.s-passed { background: var(--passed); } td.s-failed { background: var(--failed); }
td.s-error { background: var(--error); } td.s-skipped { background: var(--skipped); }
td.s-xfailed { background: var(--xfailed); } td.s-xpassed { background: var(--xpassed); }
.legend span { display: inline-block; padding: 0 6px; color: #fff; border-radius: 3px; margin-right: 4px; }
#details { flex: 0 0 42%; max-height: calc(100vh - 130px); overflow: auto; padding: 8px 16px;
           border-left: 1px solid #ddd; }
#details pre { background: #f7f7f7; padding: 8px; overflow: auto; max-height: 50vh; font-size: 11px; }
#details dt { font-weight: 600; } #details dd { margin: 0 0 6px 0; word-break: break-word; }
.hint { color: #777; }
"""

JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SYMBOL = {passed: "\u2713", failed: "\u2717", error: "E", skipped: "s", xfailed: "x", xpassed: "X"};
  const records = data.records;
  const colKey = r => r.override === "base" ? r.path : r.path + "/" + r.override;
  const columns = [];
  const seenCol = new Set();
  for (const p of data.paths) {
    for (const r of records) {
      const k = colKey(r);
      if (r.path === p && !seenCol.has(k)) { seenCol.add(k); columns.push({key: k, path: r.path}); }
    }
  }
  for (const r of records) {
    const k = colKey(r);
    if (!seenCol.has(k)) { seenCol.add(k); columns.push({key: k, path: r.path}); }
  }
  const byModel = new Map();
  for (const r of records) {
    if (!byModel.has(r.model)) byModel.set(r.model, new Map());
    byModel.get(r.model).set(colKey(r), r);
  }
  const models = Array.from(byModel.keys()).sort();

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fillSelect(id, values) {
    const select = document.getElementById(id);
    for (const v of values) select.appendChild(el("option", {value: v}, v));
    select.addEventListener("change", applyFilters);
  }
  const uniq = f => Array.from(new Set(records.map(f))).filter(x => x !== "").sort();
  fillSelect("f-family", uniq(r => data.family[r.model] || ""));
  fillSelect("f-path", data.paths.filter(p => records.some(r => r.path === p)));
  fillSelect("f-status", data.statuses.filter(s => records.some(r => r.status === s)));
  fillSelect("f-signature", uniq(r => r.signature || ""));
  document.getElementById("f-model").addEventListener("input", applyFilters);

  const thead = document.querySelector("#matrix thead");
  const tbody = document.querySelector("#matrix tbody");
  const head = el("tr");
  head.appendChild(el("th", {class: "model"}, "model"));
  head.appendChild(el("th", {}, "family"));
  for (const c of columns) head.appendChild(el("th", {"data-path": c.path, title: c.key}, c.key));
  thead.appendChild(head);
  for (const m of models) {
    const tr = el("tr", {"data-model": m, "data-family": data.family[m] || ""});
    tr.appendChild(el("th", {class: "model"}, m));
    tr.appendChild(el("td", {}, data.family[m] || ""));
    for (const c of columns) {
      const r = byModel.get(m).get(c.key);
      if (!r) { tr.appendChild(el("td", {"data-path": c.path})); continue; }
      const td = el("td", {class: "cell s-" + r.status, "data-path": c.path, "data-id": r.id,
                           "data-status": r.status, "data-signature": r.signature || "",
                           title: r.id + ": " + r.status + (r.signature ? " [" + r.signature + "]" : "")},
                    SYMBOL[r.status] || "?");
      td.addEventListener("click", () => show(r, td));
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }

  function applyFilters() {
    const family = document.getElementById("f-family").value;
    const path = document.getElementById("f-path").value;
    const status = document.getElementById("f-status").value;
    const signature = document.getElementById("f-signature").value;
    const text = document.getElementById("f-model").value.trim().toLowerCase();
    for (const cell of document.querySelectorAll("#matrix [data-path]")) {
      cell.hidden = path !== "" && cell.dataset.path !== path;
    }
    let shown = 0;
    for (const tr of tbody.rows) {
      let match = false;
      for (const td of tr.querySelectorAll("td.cell")) {
        const ok = !td.hidden && (status === "" || td.dataset.status === status) &&
                   (signature === "" || td.dataset.signature === signature);
        td.classList.toggle("dim", !ok);
        match = match || ok;
      }
      tr.hidden = !match || (family !== "" && tr.dataset.family !== family) ||
                  (text !== "" && !tr.dataset.model.toLowerCase().includes(text));
      if (!tr.hidden) shown++;
    }
    document.getElementById("shown").textContent = shown + " of " + models.length + " models shown";
  }

  function show(r, td) {
    for (const s of document.querySelectorAll("td.selected")) s.classList.remove("selected");
    td.classList.add("selected");
    const box = document.getElementById("details");
    box.replaceChildren();
    box.appendChild(el("h2", {}, r.id));
    const dl = el("dl");
    const sig = data.signatures[r.signature] || {};
    const rows = [["status", r.status], ["signature", r.signature || "\u2014"], ["explains", sig.explains],
                  ["fix", sig.fix], ["message", r.message], ["versions",
                  Object.entries(r.versions || {}).filter(kv => kv[1]).map(kv => kv[0] + " " + kv[1]).join(", ")],
                  ["override", Object.keys(r.override_kwargs || {}).length ? r.override + " " +
                    JSON.stringify(r.override_kwargs) : r.override],
                  ["known failure", r.known && r.known.reason ? r.known.reason + " (upstream: " + r.known.upstream +
                    ")" : ""],
                  ["duration", r.duration_s + " s"], ["run", r.run_id]];
    for (const [k, v] of rows) {
      if (!v) continue;
      dl.appendChild(el("dt", {}, k));
      dl.appendChild(el("dd", {"data-field": k}, v));
    }
    box.appendChild(dl);
    box.appendChild(el("h3", {}, "repro"));
    if (r.repro) {
      const link = el("a", {download: "repro_" + r.id + ".py", href: "#"}, "download repro.py");
      link.addEventListener("click", () => {
        link.href = URL.createObjectURL(new Blob([r.repro], {type: "text/x-python"}));
      });
      box.appendChild(link);
      box.appendChild(el("pre", {id: "repro"}, r.repro));
    } else {
      box.appendChild(el("p", {class: "hint"},
                         "no repro recorded (the scenario did not fail); run: timm-compat repro " + r.id));
    }
    if (r.evidence && Object.keys(r.evidence).length) {
      box.appendChild(el("h3", {}, "evidence"));
      box.appendChild(el("pre", {id: "evidence"}, JSON.stringify(r.evidence, null, 1)));
    }
  }
  applyFilters();
  document.body.dataset.ready = "1";
})();
"""

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
<div class="legend">{legend}</div>
</header>
<div class="filters">
<div><label for="f-family">family</label><br><select id="f-family"><option value="">all</option></select></div>
<div><label for="f-path">path</label><br><select id="f-path"><option value="">all</option></select></div>
<div><label for="f-status">status</label><br><select id="f-status"><option value="">all</option></select></div>
<div><label for="f-signature">signature</label><br>
<select id="f-signature"><option value="">all</option></select></div>
<div><label for="f-model">model contains</label><br><input id="f-model" type="search"></div>
<div><br><span id="shown"></span></div>
</div>
<main>
<div id="matrix-wrap"><table id="matrix"><thead></thead><tbody></tbody></table></div>
<aside id="details"><p class="hint">Click a cell for its message, versions and repro script.</p></aside>
</main>
<script id="report-data" type="application/json">{data}</script>
<script>{js}</script>
</body>
</html>
"""

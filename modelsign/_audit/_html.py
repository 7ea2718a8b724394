"""The audit as one self-contained HTML page an auditor can mail.

Everything is in the file: styles, a small script (sort and filter), the
lineage graph as inline SVG; no font, script or image is fetched (the
page's Content-Security-Policy forbids it, and allows only its own style
and script, by hash). Every value that comes from a bundle or a file name
is escaped where it is written (:func:`html.escape`, attributes quoted): the
page is rendered here, in Python, and the script only reorders and hides
rows, reading the escaped text back from the DOM. A name such as
``<script>`` shows as text.

Detail panels (files, signers, provenance, the exact reason) open as a
drawer on ``#m-N`` (CSS ``:target``: no script needed). Sort and filter
state live in the query string (``?sort=model&dir=desc&q=bert&verdict=rejected``),
so a link can name a view. The page is written as it is rendered, model by
model, from the records and the spool of file lists.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from modelsign import __version__
from modelsign._atomic import atomic_writer
from modelsign._audit._auditing import AuditReport
from modelsign._audit._lineage import NODE_HEIGHT, NODE_WIDTH, Layout, Node, layout
from modelsign._audit._records import (
    VERDICTS,
    AuditRecord,
    DependencyRow,
    FileRow,
    ProvenanceSummary,
    SignerRow,
)

__all__ = ["CSS", "SCRIPT", "render", "write_report"]

#: Failures first: the default order of the table.
SEVERITY = {"rejected": 0, "error": 1, "unsigned": 2, "verified": 3}
#: Characters of a node label in the lineage graph.
LABEL_CHARS = 30

CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;
--ok:#15803d;--ok-bg:#dcfce7;--bad:#b91c1c;--bad-bg:#fee2e2;--warn:#b45309;--warn-bg:#fef3c7;
--err:#475569;--err-bg:#e2e8f0;--accent:#1d4ed8;--accent-bg:#dbeafe}
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-size:14px;color:var(--ink);background:var(--bg)}
body{margin:0}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.top{background:var(--ink);color:#fff;padding:22px 32px 18px}
.top .brand{font-size:12px;letter-spacing:.12em;text-transform:uppercase;color:#94a3b8}
.top h1{margin:4px 0 10px;font-size:22px;font-weight:650}
.top dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0;color:#cbd5e1;
font-size:13px}
.top dt{color:#94a3b8}.top dd{margin:0;word-break:break-all}
main{max-width:1480px;margin:0 auto;padding:22px 32px 40px}
h2{font-size:16px;margin:28px 0 12px}
.summary{display:flex;flex-wrap:wrap;gap:12px}
.card{display:block;min-width:150px;padding:12px 16px;border-radius:10px;background:var(--card);
border:1px solid var(--line);border-left:5px solid var(--muted);color:var(--ink)}
.card:hover{text-decoration:none;box-shadow:0 1px 4px rgba(15,23,42,.12)}
.card b{display:block;font-size:26px;line-height:1.1}.card span{color:var(--muted)}
.card.verified{border-left-color:var(--ok)}.card.rejected{border-left-color:var(--bad)}
.card.unsigned{border-left-color:var(--warn)}.card.error{border-left-color:var(--err)}
.card.total{border-left-color:var(--accent)}
.verdict-line{margin:14px 0 0;font-weight:600}
.verdict-line.pass{color:var(--ok)}.verdict-line.fail{color:var(--bad)}
.toolbar{display:flex;flex-wrap:wrap;align-items:center;gap:10px 16px;margin:0 0 10px}
.toolbar input[type=search]{flex:1 1 320px;max-width:520px;padding:7px 10px;
border:1px solid #cbd5e1;border-radius:8px;font:inherit;background:#fff}
.toolbar label{display:inline-flex;align-items:center;gap:5px;color:var(--muted)}
.toolbar .shown{margin-left:auto;color:var(--muted)}
.nojs .toolbar{display:none}
.tablewrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:8px 10px;border-bottom:1px solid var(--line)}
thead th{position:sticky;top:0;background:#f1f5f9;font-size:12px;text-transform:uppercase;
letter-spacing:.04em;color:#475569;white-space:nowrap}
thead th button{all:unset;cursor:pointer}
thead th[aria-sort=ascending] button::after{content:" \\25B2";font-size:9px}
thead th[aria-sort=descending] button::after{content:" \\25BC";font-size:9px}
tbody tr:last-child td{border-bottom:0}
tbody tr:hover{background:#f8fafc}
td.model{min-width:170px;max-width:300px}
td[data-k=provenance]{min-width:150px;max-width:240px}
.cut{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:230px}
td.model a{font-weight:600;overflow-wrap:anywhere}
.sub{color:var(--muted);font-size:12px;margin-top:2px;overflow-wrap:anywhere}
td.reason{min-width:240px;max-width:440px;color:#334155;overflow-wrap:anywhere}
td.reason .text{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden}
td.reason .type{font-weight:600;color:var(--ink)}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap}
.badge.verified{background:var(--ok-bg);color:var(--ok)}
.badge.rejected{background:var(--bad-bg);color:var(--bad)}
.badge.unsigned{background:var(--warn-bg);color:var(--warn)}
.badge.error{background:var(--err-bg);color:var(--err)}
.tag{display:inline-block;padding:0 6px;border-radius:4px;font-size:11px;background:#f1f5f9;
color:#475569;margin-left:4px}
.tag.claim{background:var(--warn-bg);color:var(--warn)}
.signer{white-space:nowrap}.signer+.signer{margin-top:3px}
.method{display:inline-block;min-width:66px;color:var(--muted)}
.empty{padding:18px;color:var(--muted);text-align:center}
.graph{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px;
overflow:auto}
.graph svg{display:block}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:var(--muted);font-size:12px;margin-top:8px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:5px;
vertical-align:-2px;border:2px solid}
.legend .l-model{border-color:var(--ok)}.legend .l-fail{border-color:var(--bad)}
.legend .l-data{border-color:var(--accent);background:var(--accent-bg)}
.legend .l-ext{border-style:dashed;border-color:var(--muted)}
svg .edge{fill:none;stroke:#94a3b8;stroke-width:1.6}
svg .edge.dataset{stroke:#93c5fd}svg .edge.claimed{stroke-dasharray:5 4}
svg .node rect{fill:#fff;stroke:var(--muted);stroke-width:2}
svg .node.verified rect{stroke:var(--ok)}svg .node.rejected rect{stroke:var(--bad)}
svg .node.unsigned rect{stroke:var(--warn)}svg .node.error rect{stroke:var(--err)}
svg .node.dataset rect{stroke:var(--accent);fill:var(--accent-bg)}
svg .node.external rect{stroke-dasharray:5 4;fill:#f8fafc}
svg .node text{font-size:12.5px;fill:var(--ink)}svg .node text.d{font-size:11px;fill:var(--muted)}
svg a:hover rect{fill:#f1f5f9}
.detail{display:none}
.detail:target{display:block;position:fixed;top:0;right:0;bottom:0;width:min(820px,94vw);
overflow:auto;background:#fff;padding:0 26px 30px;z-index:10;
box-shadow:0 0 0 100vmax rgba(15,23,42,.45),-8px 0 24px rgba(15,23,42,.25)}
.detail>header{position:sticky;top:0;background:#fff;padding:18px 0 12px;
border-bottom:1px solid var(--line);display:flex;align-items:center;gap:12px}
.detail>header h3{margin:0;font-size:17px;word-break:break-all;flex:1}
.detail .close{font-size:13px;white-space:nowrap}
.detail h4{margin:22px 0 8px;font-size:13px;text-transform:uppercase;letter-spacing:.05em;
color:#475569}
.detail dl{display:grid;grid-template-columns:max-content 1fr;gap:5px 16px;margin:12px 0}
.detail dt{color:var(--muted)}.detail dd{margin:0;word-break:break-all}
.detail pre{white-space:pre-wrap;word-break:break-all;background:#fef2f2;border:1px solid #fecaca;
border-radius:8px;padding:10px 12px;margin:0}
.detail .hint{margin:8px 0 0;color:#334155}
.detail table{font-size:13px;border:1px solid var(--line)}
.detail td.mono{word-break:break-all}.detail td{overflow-wrap:anywhere}
.detail td.name{word-break:normal;overflow-wrap:anywhere}.detail td.nowrap{white-space:nowrap}
.detail .type{font-weight:600;margin:0 0 6px}
.detail td.num{text-align:right;white-space:nowrap}
.warn{color:var(--warn)}
.signers{list-style:none;padding:0;margin:0}
.signers li{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:0 0 8px}
.signers .who{overflow-wrap:anywhere}.signers .note{margin-top:4px;color:var(--bad)}
.tag.ok{background:var(--ok-bg);color:var(--ok)}
footer{max-width:1480px;margin:0 auto;padding:0 32px 30px;color:var(--muted);font-size:12px}
@media print{.detail{display:block;position:static;box-shadow:none;width:auto;
page-break-before:always}.toolbar{display:none}}
""".strip()

SCRIPT = """
"use strict";
(function () {
  var body = document.querySelector("#models tbody");
  if (!body) { return; }
  document.documentElement.classList.remove("nojs");
  var rows = Array.prototype.slice.call(body.rows);
  var search = document.getElementById("q");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=verdict]"));
  var heads = Array.prototype.slice.call(document.querySelectorAll("#models th[data-k]"));
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var query = new URLSearchParams(location.search);
  var sort = query.get("sort") || "verdict";
  var dir = query.get("dir") === "desc" ? -1 : 1;
  if (query.has("q")) { search.value = query.get("q"); }
  if (query.has("verdict")) {
    var want = query.get("verdict").split(",");
    boxes.forEach(function (b) { b.checked = b.defaultChecked = want.indexOf(b.value) >= 0; });
  }
  function value(row, key) {
    var cell = row.querySelector('td[data-k="' + key + '"]');
    if (!cell) { return ""; }
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
  }
  function keyed(key) {
    var out = new Map();
    rows.forEach(function (row) { out.set(row, value(row, key)); });
    return out;
  }
  function compare(keys, names) {
    return function (a, b) {
      var x = keys.get(a), y = keys.get(b), nx = Number(x), ny = Number(y), c;
      if (x !== "" && y !== "" && isFinite(nx) && isFinite(ny)) { c = nx - ny; }
      else { c = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"}); }
      if (!c) { c = names.get(a).localeCompare(names.get(b)); }
      return c * dir || Number(a.getAttribute("data-i")) - Number(b.getAttribute("data-i"));
    };
  }
  function render() {
    var needle = search.value.trim().toLowerCase();
    var allowed = boxes.filter(function (b) { return b.checked; })
      .map(function (b) { return b.value; });
    rows.sort(compare(keyed(sort), keyed("model")));
    var count = 0;
    rows.forEach(function (row) {
      var ok = allowed.indexOf(row.getAttribute("data-verdict")) >= 0 &&
        (!needle || row.textContent.toLowerCase().indexOf(needle) >= 0);
      row.hidden = !ok;
      if (ok) { count += 1; }
      body.appendChild(row);
    });
    shown.textContent = count + " of " + rows.length + " shown";
    empty.hidden = count !== 0;
    heads.forEach(function (h) {
      var key = h.getAttribute("data-k");
      h.setAttribute("aria-sort", key === sort ? (dir > 0 ? "ascending" : "descending") : "none");
    });
    var next = new URLSearchParams();
    if (sort !== "verdict" || dir < 0) { next.set("sort", sort); }
    if (dir < 0) { next.set("dir", "desc"); }
    if (needle) { next.set("q", search.value.trim()); }
    if (allowed.length !== boxes.length) { next.set("verdict", allowed.join(",")); }
    var text = next.toString();
    try { history.replaceState(null, "", (text ? "?" + text : location.pathname) + location.hash); }
    catch (e) { /* some viewers forbid it: the view still applies */ }
  }
  heads.forEach(function (h) {
    h.querySelector("button").addEventListener("click", function () {
      var key = h.getAttribute("data-k");
      if (key === sort) { dir = -dir; } else { sort = key; dir = 1; }
      render();
    });
  });
  search.addEventListener("input", render);
  boxes.forEach(function (b) { b.addEventListener("change", render); });
  Array.prototype.forEach.call(document.querySelectorAll("a[data-only]"), function (a) {
    a.addEventListener("click", function (event) {
      event.preventDefault();
      var only = a.getAttribute("data-only");
      boxes.forEach(function (b) { b.checked = !only || b.value === only; });
      render();
      document.getElementById("models").scrollIntoView();
    });
  });
  render();
})();
""".strip()


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def e(value: object) -> str:
    """A value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _badge(verdict: str) -> str:
    return f'<span class="badge {e(verdict)}">{e(verdict)}</span>'


def _who(s: SignerRow) -> str:
    return s.who[:16] + "…" if s.method == "key" and len(s.who) > 16 else s.who


def _signer_cell(signers: Iterable[SignerRow]) -> str:
    out = []
    for s in signers:
        when = f' <span class="sub">{e(s.when[:10])}</span>' if s.when else ""
        claim = "" if s.verified else ' <span class="tag claim">claimed</span>'
        if s.counted is False:
            claim = f' <span class="tag claim" title="{e(s.note or "")}">not counted</span>'
        out.append(
            f'<div class="signer" title="{e(s.who)}"><span class="method">{e(s.method)}</span>'
            f"{e(_who(s))}{when}{claim}</div>"
        )
    return "".join(out) or "—"


def _provenance_cell(p: ProvenanceSummary | None) -> str:
    if p is None:
        return "—"
    if p.status == "missing":
        return '<span class="sub">none</span>'
    if p.status == "invalid":
        return f'<span class="tag claim" title="{e(p.error or "")}">invalid</span>'
    lines = []
    if p.base_model is not None:
        lines.append(f"<div>base <b>{e(p.base_model.name)}</b></div>")
    if p.datasets:
        names = ", ".join(d.name for d in p.datasets)
        count = len(p.datasets)
        lines.append(f'<div title="{e(names)}">{count} dataset{"s" if count > 1 else ""}</div>')
    if p.code is not None:
        commit = (p.code.digest or "").rpartition(":")[2][:10] or "?"
        dirty = " (dirty)" if p.code_dirty else ""
        lines.append(f'<div class="sub" title="{e(p.code.name)}">commit {e(commit)}{dirty}</div>')
    builder = p.builder or "?"
    lines.append(f'<div class="sub cut" title="{e(builder)}">by {e(builder)}</div>')
    if p.status == "unverified":
        lines.append(f'<span class="tag claim" title="{e(p.error or "")}">claimed</span>')
    return "".join(lines)


def _row(r: AuditRecord) -> str:
    digest = "—"
    if r.root_digest:
        claim = ' <span class="tag claim">claimed</span>' if r.claims_only else ""
        digest = (
            f'<span class="mono" title="sha256:{e(r.root_digest)}">'
            f"{e(r.root_digest[:12])}</span>{claim}"
        )
    name = ""
    if r.model_name and r.model_name != Path(r.path).name:
        name = f'<div class="sub">{e(r.model_name)}</div>'
    threshold = "—" if r.threshold is None else e(r.threshold.describe())
    prov = _provenance_cell(r.provenance)
    reason = ""
    if r.error_type:
        first = " ".join(line.strip() for line in (r.reason or "").splitlines()[:2])
        reason = f'<div class="text"><span class="type">{e(r.error_type)}</span> {e(first)}</div>'
    cells = [
        f'<td data-k="verdict" data-v="{SEVERITY[r.verdict]}">{_badge(r.verdict)}</td>',
        f'<td data-k="model" class="model" data-v="{e(r.path)}">'
        f'<a href="#m-{r.index}">{e(r.path)}</a>{name}</td>',
        f'<td data-k="version" class="mono">{e(r.version[:12]) if r.version else "—"}</td>',
        f'<td data-k="digest" data-v="{e(r.root_digest or "")}">{digest}</td>',
        f'<td data-k="signers">{_signer_cell(r.signers)}</td>',
        f'<td data-k="threshold">{threshold}</td>',
        f'<td data-k="provenance">{prov}</td>',
        f'<td data-k="reason" class="reason">{reason}</td>',
    ]
    return f'<tr data-i="{r.index}" data-verdict="{e(r.verdict)}">{"".join(cells)}</tr>\n'


_COLUMNS = (
    ("verdict", "Verdict"),
    ("model", "Model"),
    ("version", "Version"),
    ("digest", "Root digest"),
    ("signers", "Signers"),
    ("threshold", "Threshold"),
    ("provenance", "Provenance"),
    ("reason", "Reason"),
)


def _head(report: AuditReport) -> str:
    failed = sum(1 for r in report.records if not r.passed)
    title = f"modelsign audit: {len(report.records)} models, {failed} not verified"
    policy = f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; "
    policy += "img-src data:; base-uri 'none'; form-action 'none'"
    meta = "".join(
        f"<dt>{e(k)}</dt><dd>{e(v)}</dd>"
        for k, v in (
            ("Policy", report.policy),
            ("Paths", ", ".join(report.paths) or "—"),
            ("Audited", f"{report.started} to {report.finished}"),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en" class="nojs">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{e(policy)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        '<header class="top"><div class="brand">modelsign audit report</div>'
        f"<h1>{e(len(report.records))} models audited</h1><dl>{meta}</dl></header>\n<main>\n"
    )


def _summary(report: AuditReport) -> str:
    counts = report.counts()
    cards = [
        f'<a class="card total" href="#models" data-only=""><b>{len(report.records)}</b>'
        "<span>models</span></a>"
    ]
    cards += [
        f'<a class="card {v}" href="?verdict={v}#models" data-only="{v}" id="count-{v}">'
        f"<b>{counts[v]}</b><span>{v}</span></a>"
        for v in VERDICTS
    ]
    failed = len(report.records) - counts["verified"]
    line = (
        '<p class="verdict-line pass">Every model verified under the policy.</p>'
        if not failed
        else f'<p class="verdict-line fail">{failed} of {len(report.records)} models did not '
        "verify: the reasons are in the table and in each model's details.</p>"
    )
    return f'<section class="summary" aria-label="Summary">{"".join(cards)}</section>{line}\n'


def _table(records: Iterable[AuditRecord]) -> Iterator[str]:
    boxes = "".join(
        f'<label><input type="checkbox" name="verdict" value="{v}" checked> {v}</label>'
        for v in VERDICTS
    )
    heads = "".join(
        f'<th data-k="{k}" aria-sort="none" scope="col"><button type="button">{t}</button></th>'
        for k, t in _COLUMNS
    )
    yield (
        '<section id="models"><h2>Models</h2>\n<div class="toolbar">'
        '<input type="search" id="q" placeholder="Filter: model, signer, digest, reason…" '
        f'aria-label="Filter the models">{boxes}<span class="shown" id="shown"></span></div>\n'
        f'<div class="tablewrap"><table><thead><tr>{heads}</tr></thead>\n<tbody>\n'
    )
    for r in sorted(records, key=lambda r: (SEVERITY[r.verdict], r.path)):
        yield _row(r)
    yield (
        '</tbody></table><p class="empty" id="empty" hidden>No model matches the filter.</p>'
        "</div></section>\n"
    )


def _left_cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _node(n: Node) -> str:
    label = _left_cut(n.label, LABEL_CHARS)
    kind = n.kind if n.kind != "model" else f"model {n.verdict}"
    body = (
        f'<g class="node {e(kind)}"><title>{e(n.label)}</title>'
        f'<rect x="{n.x}" y="{n.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8"/>'
        f'<text x="{n.x + 12}" y="{n.y + 18}">{e(label)}</text>'
        f'<text class="d" x="{n.x + 12}" y="{n.y + 34}">{e(n.kind if n.kind != "model" else "")}'
        f"{' ' if n.kind != 'model' else ''}{e(n.detail)}</text></g>"
    )
    return f'<a href="#m-{n.index}">{body}</a>' if n.index is not None else body


def _svg(graph: Layout) -> str:
    where = {n.key: n for n in graph.nodes}
    paths = []
    for edge in graph.edges:
        a, b = where[edge.source], where[edge.target]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
        x2, y2 = b.x - 2, b.y + NODE_HEIGHT // 2
        bend = max(30, (x2 - x1) // 2)
        style = f"{edge.kind} {'verified' if edge.verified else 'claimed'}"
        paths.append(
            f'<path class="edge {style}" marker-end="url(#arrow)" '
            f'd="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{graph.width}" height="{graph.height}" '
        f'viewBox="0 0 {graph.width} {graph.height}" role="img" '
        'aria-label="Lineage: datasets and base models, and the models built from them">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#94a3b8"/></marker>'
        f"</defs><g>{''.join(paths)}</g><g>{''.join(_node(n) for n in graph.nodes)}</g></svg>"
    )


def _lineage(records: list[AuditRecord]) -> str:
    graph = layout(records)
    head = '<section id="lineage"><h2>Lineage</h2>\n'
    if not graph.edges:
        return (
            f'{head}<p class="empty graph">No lineage: no model of this audit has provenance '
            "naming a base model or a dataset.</p></section>\n"
        )
    omitted = (
        f'<p class="warn">{graph.omitted} more nodes are not drawn.</p>' if graph.omitted else ""
    )
    legend = (
        '<div class="legend"><span><i class="l-model"></i>model (verified)</span>'
        '<span><i class="l-fail"></i>model (not verified)</span>'
        '<span><i class="l-data"></i>dataset</span>'
        '<span><i class="l-ext"></i>base model not in this audit</span>'
        "<span>dashed edge: provenance claimed, not verified</span></div>"
    )
    return f'{head}<div class="graph">{_svg(graph)}</div>{legend}{omitted}</section>\n'


def _dl(items: Iterable[tuple[str, str | None]]) -> str:
    """A definition list of pre-escaped values (``None``: left out)."""
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items if v) + "</dl>"


def _dependency(d: DependencyRow | None) -> str | None:
    if d is None:
        return None
    uri = f' <span class="sub">{e(d.uri)}</span>' if d.uri and d.uri != d.name else ""
    digest = f' <span class="mono">{e(d.digest)}</span>' if d.digest else ""
    return f"{e(d.name)}{digest}{uri}"


def _provenance(p: ProvenanceSummary) -> str:
    code = _dependency(p.code)
    if code is not None and p.code_dirty:
        code += ' <span class="tag claim">dirty tree</span>'
    datasets = "<br>".join(x for x in map(_dependency, p.datasets) if x) or None
    return _dl(
        [
            ("Status", e(p.status)),
            ("Bundle", e(p.signature) if p.signature else None),
            ("Builder", e(p.builder) if p.builder else None),
            ("Code", code),
            ("Datasets", datasets),
            ("Base model", _dependency(p.base_model)),
            ("Started", e(p.started) if p.started else None),
            ("Finished", e(p.finished) if p.finished else None),
            ("Entry point", e(p.entry_point) if p.entry_point else None),
            ("Frameworks", e(", ".join(p.frameworks)) if p.frameworks else None),
            (
                "Parameters",
                f'<span class="mono">{e(p.parameters)}</span>' if p.parameters else None,
            ),
            ("Signed by", _signer_cell([p.signer]) if p.signer else None),
            ("Problem", e(p.error) if p.error else None),
        ]
    )


def _when(s: SignerRow) -> str:
    if not s.when:
        return "—"
    return f"{e(s.when)} ({'verified' if s.when_verified else 'claimed'})"


def _digest(f: FileRow) -> str:
    if f.digest:
        return e(f.digest)
    return "—" if f.shards is None else f"{f.shards} shards"


def _signers(signers: Sequence[SignerRow]) -> str:
    if not signers:
        return "<p>No signer: the model has no bundle that could be read.</p>"
    items = []
    for s in signers:
        tags = ""
        if s.counted is True:
            tags = f'<span class="tag ok">counted{" " + e(s.note) if s.note else ""}</span>'
        elif s.counted is False:
            tags = '<span class="tag claim">not counted</span>'
        facts = [
            e(s.bundle or "?"),
            "signature verified" if s.verified else "claimed, not verified",
            f"signed {_when(s)}" if s.when else "no signing time (key method, no timestamp)",
        ]
        if s.issuer:
            facts.append(f"issuer {e(s.issuer)}")
        note = f'<div class="note">{e(s.note)}</div>' if s.counted is False and s.note else ""
        items.append(
            f'<li><div><span class="method">{e(s.method)}</span><span class="mono who">'
            f'{e(s.who)}</span> {tags}</div><div class="sub">{" · ".join(facts)}</div>{note}</li>'
        )
    return f'<ul class="signers">{"".join(items)}</ul>'


def _files(files: list[FileRow]) -> str:
    if not files:
        return "<p>No file list: the bundle could not be read.</p>"
    rows = "".join(
        f'<tr><td class="mono name">{e(f.name)}</td><td class=num>{_size(f.size)}</td>'
        f"<td class=mono>{_digest(f)}</td>"
        f"<td>{e(f.archive) + f' ({f.members} members)' if f.archive else ''}</td></tr>"
        for f in files
    )
    return (
        "<table><thead><tr><th>File</th><th>Size</th><th>Digest</th><th>Archive</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _detail(r: AuditRecord, files: list[FileRow]) -> str:
    claim = " (claimed by the bundle: the model did not verify)" if r.claims_only else ""
    facts = _dl(
        [
            ("Path", e(r.path)),
            ("Kind", e(r.kind)),
            ("Model name", e(r.model_name) if r.model_name else None),
            ("Version", e(r.version) if r.version else None),
            ("Signature", e(r.signature) if r.signature else None),
            (
                "Root digest",
                f'<span class="mono">sha256:{e(r.root_digest)}</span>{e(claim)}'
                if r.root_digest
                else None,
            ),
            ("Hash type", e(r.hash_type) if r.hash_type else None),
            ("Files", f"{r.files} ({_size(r.size)})" if r.files is not None else None),
        ]
    )
    parts = [
        f'<article class="detail" id="m-{r.index}" aria-label="{e(r.path)}">'
        f'<header>{_badge(r.verdict)}<h3>{e(r.path)}</h3><a class="close" href="#models">'
        "Close ✕</a></header>",
        facts,
    ]
    if r.error_type:
        hint = f'<p class="hint"><b>What to do:</b> {e(r.hint)}</p>' if r.hint else ""
        parts.append(
            f'<h4>Reason</h4><p class="type">{e(r.error_type)}</p>'
            f"<pre>{e(r.reason or '')}</pre>{hint}"
        )
    if r.warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in r.warnings)
        parts.append(f'<h4>Warnings</h4><ul class="warn">{items}</ul>')
    parts.append(f"<h4>Signers</h4>{_signers(r.signers)}")
    if r.threshold is not None:
        t = r.threshold
        rule = f" ({e(t.rule)})" if t.rule else ""
        parts.append(f"<h4>Threshold</h4><p>{e(t.describe())}{rule}</p>")
    if r.provenance is not None:
        parts.append(f"<h4>Provenance</h4>{_provenance(r.provenance)}")
    parts.append(f"<h4>Files ({len(files)})</h4>{_files(files)}</article>\n")
    return "".join(parts)


def render(report: AuditReport) -> Iterator[str]:
    """The page, piece by piece (the details read the spool in order).

    Args:
        report: the audit.

    Returns:
        An iterator of HTML text.

    Raises:
        OSError: the spool cannot be read back.
    """
    yield _head(report)
    yield _summary(report)
    yield from _table(report.records)
    yield _lineage(report.records)
    yield '<section id="details" aria-label="Details">\n'
    for record, files in zip(report.records, report.spool.read(), strict=True):
        yield _detail(record, files)
    yield "</section>\n</main>\n"
    yield (
        f"<footer>Written by modelsign {e(__version__)} on {e(report.finished)}. Values come "
        "from bundles and file names; a value marked <i>claimed</i> is what a bundle says, not "
        "what was verified.</footer>\n"
    )
    yield f"<script>{SCRIPT}</script>\n</body>\n</html>\n"


def write_report(report: AuditReport, path: Path) -> None:
    """Write the page to ``path`` atomically (a reader sees the old file or
    the whole new one).

    Args:
        report: the audit.
        path: the HTML file.

    Returns:
        Nothing.

    Raises:
        UsageError: ``path`` cannot be written.
    """
    with atomic_writer(path) as f:
        for piece in render(report):
            f.write(piece.encode("utf-8"))

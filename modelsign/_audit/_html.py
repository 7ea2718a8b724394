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
The style sheet and the script are ``report.css`` and ``report.js`` beside
this module, inlined into every page.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.resources
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

_ASSETS = importlib.resources.files(__package__)
#: The page's style sheet and script, inlined (the CSP allows them by hash).
CSS = (_ASSETS / "report.css").read_text(encoding="utf-8").strip()
SCRIPT = (_ASSETS / "report.js").read_text(encoding="utf-8").strip()


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

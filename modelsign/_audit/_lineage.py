"""The lineage graph of an audit, laid out for SVG: datasets and base models
on the left, the models trained from them to their right.

Nodes are models (one per root digest), base models the audit did not find
(``external``), and datasets. Edges go from a dataset or a base model to
the model built from it, as the model's provenance records them (solid when
the provenance verified, dashed when it is only claimed). Only models with
lineage are drawn; the table lists the others.

Layout: a column per generation (datasets 0, models without a known base
1, a fine-tune one right of its base), rows ordered by name and then by the
mean row of each node's parents (two sweeps), which keeps most edges short
and uncrossed. Pure computation, no I/O: the HTML writer draws the result.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelsign._audit._records import AuditRecord

__all__ = ["Edge", "Layout", "Node", "layout"]

NODE_WIDTH = 232
NODE_HEIGHT = 44
COLUMN_GAP = 96
ROW_GAP = 14
MARGIN = 16
#: Nodes drawn at most; the rest are counted in :attr:`Layout.omitted`.
MAX_NODES = 400

NodeKind = Literal["model", "external", "dataset"]


@dataclass(frozen=True)
class Node:
    key: str
    kind: NodeKind
    label: str
    #: A second line: a short digest, or the verdict.
    detail: str
    verdict: str | None = None
    #: The record's index (its detail panel), for a model of the audit.
    index: int | None = None
    column: int = 0
    row: int = 0
    x: int = 0
    y: int = 0


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: Literal["base", "dataset"]
    #: The provenance that records it verified.
    verified: bool


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    #: Nodes left out (over :data:`MAX_NODES`).
    omitted: int = 0


def _short(digest: str | None) -> str:
    return "" if not digest else digest.rpartition(":")[2][:12]


def _graph(records: Sequence[AuditRecord]) -> tuple[dict[str, Node], list[Edge]]:
    """The nodes and edges, unplaced."""
    models: dict[str, Node] = {}
    for r in records:
        key = f"m:{r.root_digest}" if r.root_digest else f"p:{r.path}"
        known = models.get(key)
        if known is None or (r.passed and known.verdict != "verified"):
            models[key] = Node(key, "model", r.path, r.verdict, r.verdict, r.index)
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    for r in records:
        prov = r.provenance
        if prov is None or prov.status not in ("verified", "unverified"):
            continue
        target = f"m:{r.root_digest}" if r.root_digest else f"p:{r.path}"
        verified = prov.status == "verified"
        if prov.base_model is not None:
            base = prov.base_model
            digest = (base.digest or "").partition(":")[2] or base.name
            source = f"m:{digest}"
            if source not in models:
                models[source] = Node(source, "external", base.name, "not in this audit")
            edges.append(Edge(source, target, "base", verified))
        for data in prov.datasets:
            source = f"d:{data.digest or data.name}"
            nodes.setdefault(source, Node(source, "dataset", data.name, _short(data.digest)))
            edges.append(Edge(source, target, "dataset", verified))
    linked = {e.source for e in edges} | {e.target for e in edges}
    nodes.update((k, n) for k, n in models.items() if k in linked)
    unique = list(dict.fromkeys(e for e in edges if e.source != e.target))
    return nodes, unique


def _columns(nodes: dict[str, Node], edges: Sequence[Edge]) -> dict[str, int]:
    """Datasets in column 0; a model one right of its base (1 without one)."""
    base_of = {e.target: e.source for e in edges if e.kind == "base"}
    column: dict[str, int] = {}
    for key, node in nodes.items():
        if node.kind == "dataset":
            column[key] = 0
            continue
        chain, current = [], key
        while current in base_of and current not in chain and current not in column:
            chain.append(current)
            current = base_of[current]
        start = column.get(current, 1)
        if current not in column:
            column[current] = start
        for depth, k in enumerate(reversed(chain), start=1):
            column[k] = start + depth
    return column


def _centre(key: str, row: dict[str, int], near: dict[str, list[str]]) -> float:
    """The mean row of a node's neighbours (its own row without any)."""
    linked = [row[n] for n in near.get(key, ()) if n in row]
    return sum(linked) / len(linked) if linked else row[key]


def layout(records: Sequence[AuditRecord]) -> Layout:
    """Place the lineage of ``records``.

    Args:
        records: every record of the audit.

    Returns:
        The placed nodes and edges (none when no model has lineage).

    Raises:
        ValueError: never.
    """
    nodes, edges = _graph(records)
    omitted = max(0, len(nodes) - MAX_NODES)
    if omitted:
        kept = dict(list(nodes.items())[:MAX_NODES])
        nodes = kept
        edges = [e for e in edges if e.source in kept and e.target in kept]
    if not edges:
        return Layout((), (), 0, 0, omitted)
    column = _columns(nodes, edges)
    by_column: dict[int, list[str]] = {}
    for key in sorted(nodes, key=lambda k: (nodes[k].label, k)):
        by_column.setdefault(column[key], []).append(key)
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e.target, []).append(e.source)
        children.setdefault(e.source, []).append(e.target)
    columns = sorted(by_column)
    for neighbours, order in ((parents, columns), (children, columns[::-1])):
        for c in order:
            row = {k: i for col in by_column.values() for i, k in enumerate(col)}
            by_column[c].sort(key=functools.partial(_centre, row=row, near=neighbours))
    tallest = max(len(keys) for keys in by_column.values())
    height = 2 * MARGIN + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP
    placed = []
    for rank, c in enumerate(columns):  # an empty column (no dataset) takes no space
        keys = by_column[c]
        span = len(keys) * NODE_HEIGHT + (len(keys) - 1) * ROW_GAP
        top = (height - span) // 2
        x = MARGIN + rank * (NODE_WIDTH + COLUMN_GAP)
        for i, key in enumerate(keys):
            n = nodes[key]
            y = top + i * (NODE_HEIGHT + ROW_GAP)
            placed.append(Node(n.key, n.kind, n.label, n.detail, n.verdict, n.index, rank, i, x, y))
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + (len(columns) - 1) * COLUMN_GAP
    return Layout(tuple(placed), tuple(edges), width, height, omitted)

"""``modelsign audit``: every model of a store, verified under one policy,
reported as a table, JSON or a self-contained HTML page.

* :mod:`._walk` finds the models below the paths given (model folders with
  ``model.sig``, single files with ``FILE.sig``, Hugging Face cache snapshots,
  and folders of model files that no bundle covers);
* :mod:`._records` holds what is reported about one model
  (:class:`AuditRecord`), small enough to keep for thousands of models: the
  file lists go to a spool file (:class:`Spool`), not memory;
* :mod:`._auditing` verifies each model and resolves lineage;
  :mod:`._provenance` reads or verifies its signed provenance,
  :mod:`._signatures` turns its trust report into signer rows;
* :mod:`._lineage` lays out the lineage graph; :mod:`._html` writes the page.

Nothing here prints: the command line (``modelsign._cli._audit``) does.
"""

from __future__ import annotations

from modelsign._audit._auditing import AuditReport, audit, audit_one, resolve_lineage
from modelsign._audit._records import (
    VERDICTS,
    AuditRecord,
    DependencyRow,
    FileRow,
    ProvenanceSummary,
    SignerRow,
    Spool,
    ThresholdStatus,
    Verdict,
)
from modelsign._audit._walk import Candidate, find_models

__all__ = [
    "VERDICTS",
    "AuditRecord",
    "AuditReport",
    "Candidate",
    "DependencyRow",
    "FileRow",
    "ProvenanceSummary",
    "SignerRow",
    "Spool",
    "ThresholdStatus",
    "Verdict",
    "audit",
    "audit_one",
    "find_models",
    "resolve_lineage",
]

"""Keys and policy: who else can read a private key, who else can change
what the policy trusts, and whether the policy's scope covers the models.

Which private keys are checked: the files and folders given (``--keys``,
searched recursively without following links, at most
:data:`MAX_FILES_SEARCHED` files), and the ``NAME.key`` beside each
``NAME.pub`` the policy trusts (where ``modelsign keygen`` writes it). A
file is a private key when its first bytes hold a PEM private key, or when
its name ends in ``.key``.

Which policy files are checked: the policy itself and every file it names
(public keys, bundles, CA, TSA and Sigstore trust-root files), and each
folder above them: whoever can write a folder on the way can replace what
it holds, unless the folder is sticky (``/tmp``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modelsign._doctor._findings import Finding
from modelsign.policy import Policy

MAX_FILES_SEARCHED = 20_000
_HEAD = 8192
_PEM_PRIVATE = re.compile(rb"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----")


@dataclass
class Checked:
    """What the checks looked at, for the report (``checked`` in ``--json``)."""

    private_keys: list[str] = field(default_factory=list)
    policy_files: list[str] = field(default_factory=list)
    #: The --keys folder whose search stopped at MAX_FILES_SEARCHED files.
    truncated: str | None = None


def _who(mode: int, read: int, write: int) -> str:
    """Who beyond the owner has a permission: ``group``, ``others`` or both."""
    parts = [n for n, bit in (("group", 0o070), ("others", 0o007)) if mode & bit & (read | write)]
    return " and ".join(parts)


def _head(path: Path) -> bytes | None:
    """The first bytes of the regular file ``path`` (None when it is not one,
    or cannot be read); a FIFO is not opened for reading (no blocking)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _HEAD)
    except OSError:
        return None
    finally:
        os.close(fd)


def _key_files(paths: Iterable[Path], checked: Checked) -> Iterator[Path]:
    """The files named, and the files under the folders named (links not
    followed, at most :data:`MAX_FILES_SEARCHED`: ``checked.truncated`` then
    names the folder where the search stopped)."""
    count = 0
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for folder, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                candidate = Path(folder, name)
                if candidate.is_symlink():
                    continue
                count += 1
                if count > MAX_FILES_SEARCHED:
                    checked.truncated = str(path)
                    return
                yield candidate


def private_key_findings(
    named: Iterable[Path], policy: Policy | None, checked: Checked
) -> list[Finding]:
    findings: list[Finding] = []
    beside_trusted: list[Path] = []
    if policy is not None:
        for key in policy.keys:
            if key.source.endswith(".pub"):
                private = Path(key.source[: -len(".pub")] + ".key")
                if private.is_file():
                    beside_trusted.append(private)
    seen: set[Path] = set()
    for path in [*_key_files(named, checked), *beside_trusted]:
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        head = _head(path)
        if head is None:
            continue
        match = _PEM_PRIVATE.search(head)
        if match is None and path.suffix != ".key":
            continue
        checked.private_keys.append(str(path))
        encrypted = (match is not None and b"ENCRYPTED" in match.group(1)) or (
            b"Proc-Type: 4,ENCRYPTED" in head
        )
        mode = os.stat(path).st_mode
        readers, writers = _who(mode, 0o044, 0), _who(mode, 0, 0o022)
        if readers or writers:
            what = "encrypted private key" if encrypted else "private key (not encrypted)"
            problems = [f"readable by {readers}"] if readers else []
            problems += [f"writable by {writers}"] if writers else []
            findings.append(
                Finding(
                    "private-key-exposed",
                    "medium" if encrypted and not writers else "high",
                    f"{path}: {what} is {' and '.join(problems)} (mode {stat.S_IMODE(mode):04o})",
                    (
                        "whoever can read it can sign models that every policy trusting its "
                        "public key accepts"
                        if not encrypted
                        else "whoever can read it can try passphrases offline, at leisure"
                    )
                    + ("; whoever can write it can swap in a key of their own" if writers else ""),
                    f"chmod 600 {path}; if others may have read it, make a new key "
                    "(modelsign keygen), re-sign, and replace the public key in every policy.",
                    str(path),
                )
            )
        if path in beside_trusted:
            findings.append(
                Finding(
                    "private-key-in-trust-store",
                    "low",
                    f"{path}: a private key lies beside a public key the policy trusts",
                    "the machines that only verify need the public key alone; a private key "
                    "there is one more copy to lose",
                    "Keep private keys with the signer (a CI secret, a token, the build host) "
                    "and only NAME.pub where policies read it.",
                    str(path),
                )
            )
    if checked.truncated is not None:
        findings.append(
            Finding(
                "key-search-truncated",
                "low",
                f"the search for private keys under {checked.truncated} stopped after "
                f"{MAX_FILES_SEARCHED} files",
                "private keys further down were not checked",
                "Name the folders that hold keys (--keys, repeatable), not a whole tree.",
                checked.truncated,
            )
        )
    return findings


def _policy_files(policy: Policy) -> list[Path]:
    files: list[Path] = [] if policy.path is None else [policy.path]
    files += [Path(k.source) for k in policy.keys]
    files += list(policy.bundles)
    files += [s.trust_root for s in policy.sigstore if s.trust_root is not None]
    for ca in policy.certificates:
        files += [ca.ca] + ([ca.tsa] if ca.tsa is not None else [])
    files += [t.tsa for t in policy.anchor_terms if t.tsa is not None]  # a key's TSA
    if policy.state is not None:  # whoever rewrites it lets an older version back in
        files.append(policy.state)
    return [f for f in files if f.exists()]


def _writable(path: Path, what: str) -> Finding | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    writers = _who(st.st_mode, 0, 0o022)
    folder = stat.S_ISDIR(st.st_mode)
    if writers and not (folder and st.st_mode & stat.S_ISVTX):
        change = "add, replace or remove files in it" if folder else "change it"
        return Finding(
            "policy-file-writable",
            "high",
            f"{path}: {what} is writable by {writers} (mode {stat.S_IMODE(st.st_mode):04o})",
            f"whoever can {change} decides what this policy trusts: one more key, a bundle "
            "of their own, or no policy at all",
            f"chmod go-w {path}",
            str(path),
        )
    if st.st_uid not in (0, os.geteuid()):
        return Finding(
            "policy-file-owner",
            "medium",
            f"{path}: {what} belongs to another user (uid {st.st_uid})",
            "its owner can change it, and so what this policy trusts",
            f"Give it to root or to the account that runs the models: chown root {path}",
            str(path),
        )
    return None


def policy_file_findings(
    policy: Policy | None, policy_file: Path | None, checked: Checked
) -> list[Finding]:
    """Policy files (and the folders above them) that others can change."""
    files = _policy_files(policy) if policy is not None else []
    if policy_file is not None and policy_file.exists():
        files.insert(0, policy_file)
    findings: list[Finding] = []
    folders: dict[Path, None] = {}
    for file in files:
        # The folders above the path as named (a link there can be replaced)
        # and above the file it resolves to.
        for folder in (*Path(os.path.abspath(file)).parents, *file.resolve().parents):
            folders.setdefault(folder)
    for real in dict.fromkeys(f.resolve() for f in files):
        checked.policy_files.append(str(real))
        finding = _writable(real, "a file of the policy")
        if finding is not None:
            findings.append(finding)
    for folder in folders:
        finding = _writable(folder, "a folder above the policy's files")
        if finding is not None:
            findings.append(finding)
    return findings


def scope_findings(policy: Policy, models: Iterable[Path]) -> list[Finding]:
    """``--models`` folders that the policy's scope leaves unguarded."""
    findings: list[Finding] = []
    for model in models:
        path = os.path.abspath(model)
        if policy.in_scope(path):
            continue
        findings.append(
            Finding(
                "scope-misses-models",
                "high",
                f"{path} is outside the policy's scope",
                f"the policy {policy.source} guards only files under "
                f"{', '.join(policy.scope)}: models loaded from {path} are not verified",
                f'Add "{path}" (or a folder above it) to [enforce] scope, or remove scope to '
                "guard every file.",
                path,
            )
        )
    return findings

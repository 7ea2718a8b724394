"""Trust policy: what a deployment trusts, and how strictly, in one TOML file.

Every key is optional except a trust anchor; unknown keys are refused::

    [trust]
    keys = ["release.pub", "/etc/modelsign/ci.pub"]  # relative to this file
    [[trust.sigstore]]                    # Sigstore keyless signers
    identity = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"
    issuer = "https://token.actions.githubusercontent.com"
    instance = "production"               # or "staging"; or trust_root = "root.json"
    [[trust.certificate]]                 # X.509 chains to a private CA
    ca = "corp-root.pem"
    identity = "ml-release@corp.example"  # pinned: SAN value or subject
    tsa = "tsa-root.pem"                  # optional: trust RFC 3161 timestamps by this TSA
    bundles = ["/srv/bundles/bert.sig"]   # extra bundles: their digests are trusted
                                          # for any file or in-memory buffer

    [enforce]
    mode = "enforce"          # or "warn": log a refusal and load anyway (roll-out)
    scope = ["/srv/models"]   # guard only files under these folders (default: all)
    discover = true           # look for MODEL/model.sig above a file and FILE.sig beside it
    pickle_loads = false      # opt-in: check pickle.loads() bytes against the bundles
    unverified_pickles = "refuse"  # or "allow": an unpickling of unverified bytes
                              # (pickle.loads, a pipe, a zip member) may resolve only
                              # the safe allowlist's globals, plus:
    allowed_globals = ["argparse.Namespace"]  # exact module.name entries

The same tables may live in ``pyproject.toml`` under ``[tool.modelsign]``
(load it by path: a policy is never read from the working directory).
A policy with no trust anchor is a configuration error, never "trust all".

Signed provenance (:mod:`modelsign.provenance`) is checked when required::

    [provenance]
    require = true            # every verified model needs MODEL/model.provenance.sig
                              # signed by a trusted signer, over its root digest
    builder_id = "https://github.com/org/repo/.github/workflows/train.yml@refs/heads/main"
    lineage = true            # the base model must verify under this policy
    base_models = ["/srv/models"]   # where base models are found (models, or
                              # folders of models); else the path recorded
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from modelsign._files import read_small
from modelsign.errors import ConfigError, KeyLoadError, NoTrustAnchorError
from modelsign.keys import PublicKey, load_public_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Anchor",
    "CertificateAuthority",
    "Mode",
    "Policy",
    "ProvenanceRules",
    "SigstoreIdentity",
    "UnverifiedPickles",
]

MAX_POLICY_BYTES = 1024 * 1024

# Every key a policy may hold, by table; anything else is a typo or a feature
# this version does not have, and both must be refused rather than ignored.
_SCHEMA: Mapping[str, frozenset[str]] = {
    "trust": frozenset({"keys", "bundles", "sigstore", "certificate"}),
    "trust.sigstore": frozenset({"identity", "issuer", "instance", "trust_root"}),
    "trust.certificate": frozenset({"ca", "identity", "tsa"}),
    "enforce": frozenset(
        {"mode", "scope", "discover", "pickle_loads", "unverified_pickles", "allowed_globals"}
    ),
}
#: What the loader hook does with a refusal: refuse, or log it and load anyway.
Mode: TypeAlias = Literal["enforce", "warn"]
#: What an unpickling of unverified bytes may resolve: the allowlist, or anything.
UnverifiedPickles: TypeAlias = Literal["refuse", "allow"]
MODES: tuple[Mode, ...] = ("enforce", "warn")
UNVERIFIED_PICKLES: tuple[UnverifiedPickles, ...] = ("refuse", "allow")
ENV_VAR = "MODELSIGN_POLICY"


def _check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in {where}")


@dataclass(frozen=True)
class SigstoreIdentity:
    """A Sigstore signer: both identity and issuer are required (an empty
    issuer would silently accept any issuer in sigstore-python)."""

    identity: str
    issuer: str
    instance: str = "production"
    trust_root: Path | None = None

    def __post_init__(self) -> None:
        if not self.identity or not self.issuer:
            raise ConfigError("a Sigstore identity needs both an identity and an issuer")
        if self.trust_root is None and self.instance not in ("production", "staging"):
            raise ConfigError(f"Sigstore instance {self.instance!r}: use production or staging")

    def describe(self) -> str:
        root = str(self.trust_root) if self.trust_root else f"{self.instance} root"
        return f"{self.identity} (issuer {self.issuer}, {root})"


@dataclass(frozen=True)
class CertificateAuthority:
    """Certificates chaining to ``ca`` whose leaf names ``identity`` (a SAN
    value, the subject's RFC 4514 string, or its common name).

    With ``tsa`` (a PEM file: the Time-Stamping Authority's self-signed
    root(s), which anchor its chain, plus optionally its intermediates and
    its own certificate, which only help build one), the leaf is validated at
    the earliest genTime of the bundle's RFC 3161 timestamps, all of which
    must verify; without timestamps, or without ``tsa``, at the current time.
    """

    ca: Path
    identity: str
    roots: tuple[Any, ...] = ()
    tsa: Path | None = None
    tsa_roots: tuple[Any, ...] = ()
    tsa_others: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.identity:
            raise ConfigError(f"{self.ca}: a certificate trust needs an identity to pin")
        if not self.roots:
            object.__setattr__(self, "roots", _pem_certificates(self.ca, "CA certificate"))
        if self.tsa is not None and not self.tsa_roots:
            from modelsign._backends.timestamp import split_tsa_certificates  # noqa: PLC0415

            roots, others = split_tsa_certificates(_pem_certificates(self.tsa, "TSA certificate"))
            if not roots:
                raise ConfigError(
                    f"{self.tsa}: no self-signed root certificate: give the TSA's root "
                    "(its own certificate and intermediates may follow)"
                )
            object.__setattr__(self, "tsa_roots", roots)
            object.__setattr__(self, "tsa_others", others)

    def describe(self) -> str:
        tsa = f", TSA {self.tsa}" if self.tsa is not None else ""
        return f"{self.identity} (CA {self.ca}{tsa})"


#: What trust can be built from: a public key, a Sigstore identity, or a CA
#: with a pinned identity.
Anchor: TypeAlias = PublicKey | SigstoreIdentity | CertificateAuthority
_ANCHOR_TYPES = (PublicKey, SigstoreIdentity, CertificateAuthority)


def _pem_certificates(path: Path, what: str) -> tuple[Any, ...]:
    from modelsign._backends.certificate import load_pem_all  # noqa: PLC0415

    data = read_small(path, MAX_POLICY_BYTES, what, ConfigError)
    try:
        return tuple(load_pem_all(data))
    except ValueError as e:
        raise ConfigError(f"{path}: not PEM certificates: {e}") from e


@dataclass(frozen=True)
class Policy:
    """A parsed, validated trust policy."""

    keys: tuple[PublicKey, ...]
    source: str = "<memory>"
    bundles: tuple[Path, ...] = ()
    mode: Mode = "enforce"
    scope: tuple[str, ...] = ()
    discover: bool = True
    pickle_loads: bool = False
    sigstore: tuple[SigstoreIdentity, ...] = ()
    certificates: tuple[CertificateAuthority, ...] = ()
    #: "refuse": an unpickling of bytes no bundle vouches for may resolve only
    #: the safe allowlist (and ``allowed_globals``); "allow": any global.
    unverified_pickles: UnverifiedPickles = "refuse"
    #: Extra ``module.name`` globals an unverified unpickling may resolve.
    allowed_globals: frozenset[str] = frozenset()
    #: The file this policy was read from (child processes read it again).
    path: Path | None = None
    #: What the model's signed provenance must show ([provenance]).
    provenance: ProvenanceRules = dataclasses.field(default_factory=lambda: ProvenanceRules())  # noqa: PLW0108 - defined below

    def __post_init__(self) -> None:
        if not (self.keys or self.sigstore or self.certificates):
            raise NoTrustAnchorError(
                f"{self.source}: the policy names no trusted key, Sigstore identity or CA "
                "(no trust anchor: trust is never implicit)",
                parameter="trust",
            )
        if self.mode not in MODES:
            raise ConfigError(f"{self.source}: [enforce] mode must be one of {MODES}")
        if self.unverified_pickles not in UNVERIFIED_PICKLES:
            raise ConfigError(
                f"{self.source}: [enforce] unverified_pickles must be one of {UNVERIFIED_PICKLES}"
            )
        object.__setattr__(self, "allowed_globals", frozenset(self.allowed_globals))
        for name in self.allowed_globals:
            _check_global(name, self.source)
        for folder in self.scope:
            if not os.path.isdir(folder):
                # A scope that names nothing guards nothing: enforcement
                # would be on, and every load unchecked.
                raise ConfigError(
                    f"{self.source}: [enforce] scope {folder!r} is not a folder (relative "
                    "scopes are relative to the policy file): the policy would guard nothing "
                    "there"
                )

    def describe(self) -> str:
        """Where the policy comes from and its mode, for messages."""
        source = self.source
        if source in ("trust=", "command line"):  # no file: say what it trusts
            source = f"{source} ({self.describe_anchors()})"
        return f"{source}, mode {self.mode}"

    def in_scope(self, path: str) -> bool:
        """Whether a file at absolute ``path`` is guarded."""
        if not self.scope:
            return True
        real = os.path.realpath(path)
        return any(
            p == prefix or p.startswith(prefix.rstrip("/") + "/")
            for prefix in self.scope
            for p in (path, real)
        )

    def to_toml(self, key_files: Sequence[Path]) -> str:
        """This policy as a policy file, with its keys read from ``key_files``
        (one per key, in order, holding its PEM). Paths are absolute, so the
        file can live anywhere. ``Policy.load`` of it gives an equal policy but
        for ``source`` and ``path``."""
        if len(key_files) != len(self.keys):
            raise ValueError("one key file per key")

        def string(value: object) -> str:
            return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string

        def strings(values: Iterable[object]) -> str:
            return "[" + ", ".join(string(v) for v in values) + "]"

        lines = [
            "# written by modelsign for child processes: the policy of its parent",
            "[trust]",
            f"keys = {strings(p.absolute() for p in key_files)}",
            f"bundles = {strings(b.absolute() for b in self.bundles)}",
        ]
        for s in self.sigstore:
            lines += [
                "[[trust.sigstore]]",
                f"identity = {string(s.identity)}",
                f"issuer = {string(s.issuer)}",
                f"instance = {string(s.instance)}",
            ]
            if s.trust_root is not None:
                lines.append(f"trust_root = {string(s.trust_root.absolute())}")
        for c in self.certificates:
            lines += [
                "[[trust.certificate]]",
                f"ca = {string(c.ca.absolute())}",
                f"identity = {string(c.identity)}",
            ]
            if c.tsa is not None:
                lines.append(f"tsa = {string(c.tsa.absolute())}")
        lines += [
            "[enforce]",
            f"mode = {string(self.mode)}",
            f"scope = {strings(self.scope)}",
            f"discover = {str(self.discover).lower()}",
            f"pickle_loads = {str(self.pickle_loads).lower()}",
            f"unverified_pickles = {string(self.unverified_pickles)}",
            f"allowed_globals = {strings(sorted(self.allowed_globals))}",
            *self.provenance.to_toml(),
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def of(cls, trust: Policy | Anchor | Iterable[Anchor | str | os.PathLike[str]]) -> Policy:
        """The policy for a ``trust=`` argument: a policy as it is; anchors
        (keys, Sigstore identities, certificate authorities; a path in the
        iterable is a public key file) as a policy of exactly those.

        Raises:
            ConfigError: no anchor at all (trust is never implicit), or a
                single path (say which: ``Policy.load`` or
                ``load_public_key``).
            KeyLoadError: a key file cannot be loaded.
        """
        if isinstance(trust, Policy):
            return trust
        if isinstance(trust, (str, bytes, os.PathLike)):
            raise ConfigError(
                f"{{param}}{os.fsdecode(trust)!r} is a path: pass Policy.load(path) for a policy "
                "file, or [path] (or load_public_key(path)) for a public key",
                parameter="trust",
            )
        anchors = [trust] if isinstance(trust, _ANCHOR_TYPES) else list(trust)
        return cls.from_anchors(anchors, source="trust=")

    def describe_anchors(self) -> str:
        """How many anchors of each kind: ``2 keys, 1 Sigstore identity``."""
        kinds = (
            (len(self.keys), "key", "keys"),
            (len(self.sigstore), "Sigstore identity", "Sigstore identities"),
            (len(self.certificates), "CA", "CAs"),
        )
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in kinds if n)

    @classmethod
    def from_anchors(
        cls, anchors: Iterable[Anchor | str | os.PathLike[str]], *, source: str
    ) -> Policy:
        """A policy trusting exactly ``anchors`` (a path is a public key file)."""
        keys: list[PublicKey] = []
        sigstore: list[SigstoreIdentity] = []
        certificates: list[CertificateAuthority] = []
        for anchor in anchors:
            if isinstance(anchor, PublicKey):
                keys.append(anchor)
            elif isinstance(anchor, SigstoreIdentity):
                sigstore.append(anchor)
            elif isinstance(anchor, CertificateAuthority):
                certificates.append(anchor)
            elif isinstance(anchor, (str, os.PathLike)):
                keys.append(load_public_key(anchor))
            else:
                raise ConfigError(
                    f"{{param}} holds a {type(anchor).__name__}, which is not a trust anchor: "
                    "give a Policy, or PublicKey, SigstoreIdentity and CertificateAuthority "
                    "objects",
                    parameter="trust",
                )
        return cls(
            tuple(dict.fromkeys(keys)),
            source,
            sigstore=tuple(dict.fromkeys(sigstore)),
            certificates=tuple(dict.fromkeys(certificates)),
        )

    def with_anchors(self, anchors: Iterable[Anchor]) -> Policy:
        """This policy, trusting ``anchors`` too."""
        extra = Policy.from_anchors(anchors, source=self.source) if anchors else None
        if extra is None:
            return self
        return dataclasses.replace(
            self,
            keys=tuple(dict.fromkeys((*self.keys, *extra.keys))),
            sigstore=tuple(dict.fromkeys((*self.sigstore, *extra.sigstore))),
            certificates=tuple(dict.fromkeys((*self.certificates, *extra.certificates))),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a policy file, or the ``[tool.modelsign]`` table of a pyproject.toml."""
        p = Path(path)
        data = read_small(p, MAX_POLICY_BYTES, "policy", ConfigError)
        if p.name == "pyproject.toml":
            doc = _parse_toml(data, str(p))
            tool = doc.get("tool", {}).get("modelsign")
            if not isinstance(tool, dict):
                raise ConfigError(f"{p}: no [tool.modelsign] table")
            policy = cls.from_mapping(tool, base_dir=p.parent, source=f"{p} [tool.modelsign]")
        else:
            policy = cls.from_toml(data, base_dir=p.parent, source=str(p))
        return dataclasses.replace(policy, path=p.absolute())

    @classmethod
    def from_environment(cls) -> Policy:
        """The policy named by ``MODELSIGN_POLICY``; a :class:`ConfigError` when
        it is not set. Never a file found in the working directory: a process
        started in a folder an attacker controls would trust the attacker."""
        env = os.environ.get(ENV_VAR)
        if env:
            return cls.load(env)
        raise ConfigError(
            f"no policy: give one, or set {ENV_VAR}=/path/to/policy.toml (a policy is "
            "never read from the working directory)"
        )

    @classmethod
    def from_toml(cls, data: bytes, *, base_dir: Path, source: str = "<policy>") -> Policy:
        return cls.from_mapping(_parse_toml(data, source), base_dir=base_dir, source=source)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, base_dir: Path, source: str) -> Policy:
        _check_keys(doc, ("trust", "enforce", "provenance"), "the policy", source)
        trust = doc.get("trust")
        if not isinstance(trust, dict):
            raise ConfigError(f"{source}: the policy needs a [trust] table")
        _check_keys(trust, _SCHEMA["trust"], "[trust]", source)
        keys = []
        for entry in _paths(trust, "keys", "[trust]", source):
            try:
                keys.append(load_public_key(_resolve(entry, base_dir)))
            except KeyLoadError as e:
                raise ConfigError(f"{source}: [trust] keys: {e}") from e
        bundles = tuple(_resolve(b, base_dir) for b in _paths(trust, "bundles", "[trust]", source))
        sigstore = tuple(
            SigstoreIdentity(
                identity=_string(t, "identity", "[[trust.sigstore]]", source),
                issuer=_string(t, "issuer", "[[trust.sigstore]]", source),
                instance=_string(t, "instance", "[[trust.sigstore]]", source, "production"),
                trust_root=_resolve(t["trust_root"], base_dir) if "trust_root" in t else None,
            )
            for t in _tables(trust, "sigstore", source)
        )
        certificates = tuple(
            CertificateAuthority(
                ca=_resolve(_string(t, "ca", "[[trust.certificate]]", source), base_dir),
                identity=_string(t, "identity", "[[trust.certificate]]", source),
                tsa=_resolve(_string(t, "tsa", "[[trust.certificate]]", source), base_dir)
                if "tsa" in t
                else None,
            )
            for t in _tables(trust, "certificate", source)
        )
        enforce = doc.get("enforce", {})
        if not isinstance(enforce, dict):
            raise ConfigError(f"{source}: [enforce] must be a table")
        _check_keys(enforce, _SCHEMA["enforce"], "[enforce]", source)
        mode = enforce.get("mode", "enforce")
        if mode not in MODES:
            raise ConfigError(f"{source}: [enforce] mode is {mode!r}; use 'enforce' or 'warn'")
        scope = tuple(
            os.path.abspath(_resolve(p, base_dir))
            for p in _paths(enforce, "scope", "[enforce]", source)
        )
        flags = {}
        for flag, default in (("discover", True), ("pickle_loads", False)):
            value = enforce.get(flag, default)
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: [enforce] {flag} must be true or false")
            flags[flag] = value
        unverified = enforce.get("unverified_pickles", "refuse")
        if unverified not in UNVERIFIED_PICKLES:
            raise ConfigError(
                f"{source}: [enforce] unverified_pickles is {unverified!r}; use 'refuse' or 'allow'"
            )
        extra = enforce.get("allowed_globals", [])
        if not isinstance(extra, list) or not all(isinstance(g, str) for g in extra):
            raise ConfigError(f"{source}: [enforce] allowed_globals must be a list of strings")
        return cls(
            tuple(dict.fromkeys(keys)),
            source,
            bundles=bundles,
            mode=mode,
            scope=scope,
            discover=flags["discover"],
            pickle_loads=flags["pickle_loads"],
            sigstore=sigstore,
            certificates=certificates,
            unverified_pickles=unverified,
            allowed_globals=frozenset(extra),
            provenance=_provenance_rules(doc.get("provenance", {}), base_dir, source),
        )


def _check_global(name: str, source: str) -> None:
    """An ``allowed_globals`` entry: an exact ``module.name`` (no wildcard: a
    module's every name would include its loaders and ``eval``-likes)."""
    module, _, attr = name.rpartition(".")
    parts = [*module.split("."), *attr.split(".")] if module else []
    if not parts or not all(p.isidentifier() for p in parts):
        raise ConfigError(
            f"{source}: [enforce] allowed_globals entry {name!r} is not an exact "
            "module.name (for example 'argparse.Namespace'; no wildcards)"
        )


def _parse_toml(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    return doc


def _paths(table: Mapping[str, Any], key: str, where: str, source: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {where} {key} must be a list of file paths")
    return value


def _tables(trust: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = trust.get(key, [])
    where = f"[[trust.{key}]]"
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{source}: {where} must be an array of tables")
    for table in value:
        _check_keys(table, _SCHEMA[f"trust.{key}"], where, source)
    return value


def _string(
    table: Mapping[str, Any], key: str, where: str, source: str, default: str | None = None
) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {where} needs a non-empty string {key!r}")
    return value


def _resolve(entry: str, base_dir: Path) -> Path:
    return Path(entry) if os.path.isabs(entry) else base_dir / entry


# --------------------------------------------------------------------------
# [provenance]: what a model's signed provenance must show.

_PROVENANCE_KEYS = frozenset({"require", "builder_id", "lineage", "base_models"})


@dataclass(frozen=True)
class ProvenanceRules:
    """What verification requires of a model's signed provenance.

    With ``require``, a model verifies only with a provenance bundle signed
    by a signer the policy trusts, whose subject is the model's root digest;
    ``builder_id`` then pins the builder it names; ``lineage`` requires the
    base model it names to verify under the policy too, found among
    ``base_models`` (models, or folders holding models), else at the
    location the provenance records. ``builder_id`` and ``lineage`` without
    ``require`` are refused: they would check a provenance nobody requires.
    """

    require: bool = False
    builder_id: str | None = None
    lineage: bool = False
    base_models: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.require and (self.builder_id is not None or self.lineage or self.base_models):
            raise ConfigError(
                "[provenance] builder_id, lineage and base_models check a provenance: set "
                "require = true with them",
                parameter="trust",
            )
        if self.builder_id is not None and not self.builder_id:
            raise ConfigError("[provenance] builder_id must not be empty", parameter="trust")

    def strengthened(
        self,
        *,
        builder_id: str | None = None,
        lineage: bool = False,
        base_models: Iterable[str | os.PathLike[str]] = (),
    ) -> ProvenanceRules:
        """These rules, requiring provenance, and with ``builder_id`` (in
        place of this one), ``lineage`` and more ``base_models``."""
        return ProvenanceRules(
            require=True,
            builder_id=builder_id or self.builder_id,
            lineage=lineage or self.lineage,
            base_models=(*self.base_models, *(Path(p) for p in base_models)),
        )

    def describe(self) -> str:
        """One line of prose (``modelsign status``)."""
        if not self.require:
            return "not required"
        parts = ["required"]
        if self.builder_id is not None:
            parts.append(f"builder {self.builder_id}")
        if self.lineage:
            parts.append("base model must verify")
        return ", ".join(parts)

    def to_toml(self) -> list[str]:
        """The ``[provenance]`` table (no lines when nothing is required)."""
        if not self.require:
            return []
        lines = ["[provenance]", "require = true", f"lineage = {str(self.lineage).lower()}"]
        if self.builder_id is not None:
            lines.append(f"builder_id = {json.dumps(self.builder_id, ensure_ascii=False)}")
        paths = ", ".join(
            json.dumps(str(p.absolute()), ensure_ascii=False) for p in self.base_models
        )
        lines.append(f"base_models = [{paths}]")
        return lines


def _provenance_rules(table: object, base_dir: Path, source: str) -> ProvenanceRules:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [provenance] must be a table")
    _check_keys(table, _PROVENANCE_KEYS, "[provenance]", source)
    flags = {}
    for flag in ("require", "lineage"):
        value = table.get(flag, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: [provenance] {flag} must be true or false")
        flags[flag] = value
    builder = table.get("builder_id")
    if builder is not None and (not isinstance(builder, str) or not builder):
        raise ConfigError(f"{source}: [provenance] builder_id must be a non-empty string")
    bases = tuple(
        _resolve(p, base_dir) for p in _paths(table, "base_models", "[provenance]", source)
    )
    try:
        return ProvenanceRules(flags["require"], builder, flags["lineage"], bases)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e

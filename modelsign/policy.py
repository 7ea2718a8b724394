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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from modelsign._files import read_small
from modelsign._policyprovenance import ProvenanceRules, parse_provenance_rules
from modelsign._policyrules import (
    ANCHOR_TERM_KEYS,
    AnchorTerms,
    Pin,
    Threshold,
    check_rules,
    parse_anchor_terms,
    parse_key_entries,
    parse_rules,
    rules_toml,
    terms_toml,
)
from modelsign._policytoml import (
    check_global,
    check_keys,
    parse_toml,
    paths,
    resolve_path,
    string,
)
from modelsign.errors import ConfigError, KeyLoadError, NoTrustAnchorError
from modelsign.keys import PublicKey, load_public_key

__all__ = [
    "Anchor",
    "AnchorTerms",
    "CertificateAuthority",
    "Mode",
    "Pin",
    "Policy",
    "ProvenanceRules",
    "SigstoreIdentity",
    "Threshold",
    "UnverifiedPickles",
]

MAX_POLICY_BYTES = 1024 * 1024

# Every key a policy may hold, by table; anything else is a typo or a feature
# this version does not have, and both must be refused rather than ignored.
_SCHEMA: Mapping[str, frozenset[str]] = {
    "trust": frozenset({"keys", "bundles", "sigstore", "certificate", "threshold", "pin"}),
    "trust.sigstore": frozenset({"identity", "issuer", "instance", "trust_root"})
    | ANCHOR_TERM_KEYS,
    "trust.certificate": frozenset({"ca", "identity", "tsa"}) | ANCHOR_TERM_KEYS,
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


def _tables(trust: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = trust.get(key, [])
    where = f"[[trust.{key}]]"
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{source}: {where} must be an array of tables")
    for table in value:
        check_keys(table, _SCHEMA[f"trust.{key}"], where, source)
    return value


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
    #: Names, validity windows and revocation of anchors (release trust).
    anchor_terms: tuple[AnchorTerms, ...] = ()
    #: k-of-n rules: every rule that applies to a model must be met.
    thresholds: tuple[Threshold, ...] = ()
    #: Which model name is expected at a path.
    pins: tuple[Pin, ...] = ()
    #: The rollback state file (highest version and root digest per model name).
    state: Path | None = None
    #: What the model's signed provenance must show ([provenance]).
    provenance: ProvenanceRules = dataclasses.field(default_factory=ProvenanceRules)

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
            check_global(name, self.source)
        for folder in self.scope:
            if not os.path.isdir(folder):
                # A scope that names nothing guards nothing: enforcement
                # would be on, and every load unchecked.
                raise ConfigError(
                    f"{self.source}: [enforce] scope {folder!r} is not a folder (relative "
                    "scopes are relative to the policy file): the policy would guard nothing "
                    "there"
                )
        check_rules(self)

    def terms_for(self, anchor: Anchor) -> AnchorTerms | None:
        """What the policy says about ``anchor`` (its name, times), if anything."""
        return next((t for t in self.anchor_terms if t.anchor == anchor), None)

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        """Every trust anchor: keys, Sigstore identities, CAs."""
        return (*self.keys, *self.sigstore, *self.certificates)

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

        def key_entry(key: PublicKey, path: Path) -> str:
            items = terms_toml(self.terms_for(key))
            if not items:
                return string(path.absolute())
            return "{" + ", ".join([f"path = {string(path.absolute())}", *items]) + "}"

        keys = ", ".join(key_entry(k, p) for k, p in zip(self.keys, key_files, strict=True))
        lines = [
            "# written by modelsign for child processes: the policy of its parent",
            "[trust]",
            f"keys = [{keys}]",
            f"bundles = {strings(b.absolute() for b in self.bundles)}",
        ]
        for s in self.sigstore:
            lines += [
                "[[trust.sigstore]]",
                f"identity = {string(s.identity)}",
                f"issuer = {string(s.issuer)}",
                f"instance = {string(s.instance)}",
                *terms_toml(self.terms_for(s)),
            ]
            if s.trust_root is not None:
                lines.append(f"trust_root = {string(s.trust_root.absolute())}")
        for c in self.certificates:
            lines += [
                "[[trust.certificate]]",
                f"ca = {string(c.ca.absolute())}",
                f"identity = {string(c.identity)}",
                *terms_toml(self.terms_for(c)),
            ]
            if c.tsa is not None:
                lines.append(f"tsa = {string(c.tsa.absolute())}")
        lines += rules_toml(self)
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

        Args:
            trust: a policy, one anchor, or an iterable of anchors and key paths.

        Returns:
            The policy.

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
        """A policy trusting exactly ``anchors``.

        Args:
            anchors: keys, Sigstore identities, certificate authorities; a
                path is a public key file.
            source: how the policy is named in messages.

        Returns:
            The policy (enforce mode, no scope).

        Raises:
            ConfigError: no anchor, or something that is not an anchor.
            KeyLoadError: a key file cannot be loaded.
        """
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
        """Load a policy file, or the ``[tool.modelsign]`` table of a pyproject.toml.

        Args:
            path: the file; relative paths in it are relative to its folder.

        Returns:
            The policy, its ``path`` set.

        Raises:
            ConfigError: unreadable, not TOML, an unknown key, a bad value, a
                missing file it names, or no trust anchor.
        """
        p = Path(path)
        data = read_small(p, MAX_POLICY_BYTES, "policy", ConfigError)
        if p.name == "pyproject.toml":
            doc = parse_toml(data, str(p))
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
        started in a folder an attacker controls would trust the attacker.

        Returns:
            The policy.

        Raises:
            ConfigError: ``MODELSIGN_POLICY`` unset, or as :meth:`load`.
        """
        env = os.environ.get(ENV_VAR)
        if env:
            return cls.load(env)
        raise ConfigError(
            f"no policy: give one, or set {ENV_VAR}=/path/to/policy.toml (a policy is "
            "never read from the working directory)"
        )

    @classmethod
    def from_toml(cls, data: bytes, *, base_dir: Path, source: str = "<policy>") -> Policy:
        """A policy from TOML text.

        Args:
            data: the policy file's bytes (UTF-8 TOML).
            base_dir: what relative paths in it are relative to.
            source: how the policy is named in messages.

        Returns:
            The policy.

        Raises:
            ConfigError: as :meth:`load`.
        """
        return cls.from_mapping(parse_toml(data, source), base_dir=base_dir, source=source)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, base_dir: Path, source: str) -> Policy:
        """A policy from parsed TOML tables (``[trust]``, ``[enforce]``,
        ``[rollback]``, ``[provenance]``); unknown keys are refused.

        Args:
            doc: the tables.
            base_dir: what relative paths in them are relative to.
            source: how the policy is named in messages.

        Returns:
            The policy.

        Raises:
            ConfigError: as :meth:`load`.
        """
        check_keys(doc, ("trust", "enforce", "rollback", "provenance"), "the policy", source)
        trust = doc.get("trust")
        if not isinstance(trust, dict):
            raise ConfigError(f"{source}: the policy needs a [trust] table")
        check_keys(trust, _SCHEMA["trust"], "[trust]", source)

        def resolve(entry: str) -> Path:
            return resolve_path(entry, base_dir)

        def load_key(path: Path) -> PublicKey:
            try:
                return load_public_key(path)
            except KeyLoadError as e:
                raise ConfigError(f"{source}: [trust] keys: {e}") from e

        keys, key_terms = parse_key_entries(trust.get("keys", []), source, resolve, load_key)
        terms: list[AnchorTerms | None] = list(key_terms)
        bundles = tuple(
            resolve_path(b, base_dir) for b in paths(trust, "bundles", "[trust]", source)
        )
        sigstore = []
        for t in _tables(trust, "sigstore", source):
            identity = SigstoreIdentity(
                identity=string(t, "identity", "[[trust.sigstore]]", source),
                issuer=string(t, "issuer", "[[trust.sigstore]]", source),
                instance=string(t, "instance", "[[trust.sigstore]]", source, "production"),
                trust_root=resolve_path(t["trust_root"], base_dir) if "trust_root" in t else None,
            )
            sigstore.append(identity)
            where = f"{source}: [[trust.sigstore]] {identity.identity}"
            terms.append(parse_anchor_terms(t, identity, where, resolve))
        certificates = []
        for t in _tables(trust, "certificate", source):
            authority = CertificateAuthority(
                ca=resolve_path(string(t, "ca", "[[trust.certificate]]", source), base_dir),
                identity=string(t, "identity", "[[trust.certificate]]", source),
                tsa=resolve_path(string(t, "tsa", "[[trust.certificate]]", source), base_dir)
                if "tsa" in t
                else None,
            )
            certificates.append(authority)
            where = f"{source}: [[trust.certificate]] {authority.identity}"
            own = {k: v for k, v in t.items() if k != "tsa"}  # the CA's TSA is its own
            terms.append(parse_anchor_terms(own, authority, where, resolve))
        thresholds, pins, state = parse_rules(trust, doc.get("rollback"), source, resolve)
        enforce = doc.get("enforce", {})
        if not isinstance(enforce, dict):
            raise ConfigError(f"{source}: [enforce] must be a table")
        check_keys(enforce, _SCHEMA["enforce"], "[enforce]", source)
        mode = enforce.get("mode", "enforce")
        if mode not in MODES:
            raise ConfigError(f"{source}: [enforce] mode is {mode!r}; use 'enforce' or 'warn'")
        scope = tuple(
            os.path.abspath(resolve_path(p, base_dir))
            for p in paths(enforce, "scope", "[enforce]", source)
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
            sigstore=tuple(sigstore),
            certificates=tuple(certificates),
            unverified_pickles=unverified,
            allowed_globals=frozenset(extra),
            anchor_terms=tuple(t for t in terms if t is not None),
            thresholds=thresholds,
            pins=pins,
            state=state,
            provenance=parse_provenance_rules(doc.get("provenance", {}), base_dir, source),
        )

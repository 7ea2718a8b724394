"""``modelsign doctor``: each finding, built for real in the environment it is
about (a fake distribution metadata folder on PYTHONPATH is what an old torch
looks like to a reader of metadata), with its severity and the exit code;
the advisory table kept well-formed; every --json output validated."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from modelsign import keys
from modelsign._doctor._advisories import parse_table, shipped_table
from modelsign._doctor._loading import enforcement_findings
from modelsign._doctor._versions import in_range, parse_range, parse_version
from modelsign._environment import Enforcement
from tests.test_json_output import validate

CLEARED = (
    "MODELSIGN_POLICY",
    "TORCH_FORCE_WEIGHTS_ONLY_LOAD",
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD",
    "PYTHONPATH",
)


def clean_env(**env: str) -> dict[str, str]:
    """This environment without the settings doctor judges, plus ``env``."""
    return {k: v for k, v in os.environ.items() if k not in CLEARED} | env


def doctor_text(*args: object, **env: str) -> subprocess.CompletedProcess[str]:
    """``modelsign doctor ARGS`` in a child with ``clean_env(**env)``."""
    return subprocess.run(
        [sys.executable, "-m", "modelsign", "doctor", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(**env),
    )


def doctor(
    *args: object, site: Path | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``modelsign doctor ARGS --json`` in a child: the environment as given
    (nothing of ours leaks in), ``site`` first on its sys.path; the report
    validated against its schema, its exit code against its findings."""
    if site is not None:
        env["PYTHONPATH"] = str(site)
    result = doctor_text(*args, "--json", **env)
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    validate(report, "doctor.schema.json")
    if result.returncode in (0, 1):
        assert result.returncode == (0 if report["healthy"] else 1), report
        assert report["healthy"] == all(f["severity"] != "high" for f in report["findings"])
    return result, report


def codes(report: dict[str, Any]) -> dict[str, str]:
    """{code or advisory id: severity} of every finding."""
    return {
        (f["advisory"]["id"] if f["code"] in ("advisory", "pip-audit") else f["code"]): f[
            "severity"
        ]
        for f in report["findings"]
    }


def fake_site(root: Path, **versions: str) -> Path:
    """A folder of distribution metadata only: ``torch="2.5.1"`` makes
    importlib.metadata (and so doctor) see torch 2.5.1 first on sys.path."""
    site = root / "site"
    for name, version in versions.items():
        dist = site / f"{name}-{version}.dist-info"
        dist.mkdir(parents=True)
        real = name.replace("_", "-")
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {real}\nVersion: {version}\n")
    return site


@pytest.fixture
def trust(tmp_path: Path) -> tuple[Path, Path]:
    """(a public key in a folder of its own, its private key elsewhere)."""
    private = tmp_path / "signer" / "release.key"
    keys.write_keypair(keys.generate("ed25519"), private.with_suffix(""), None)
    store = tmp_path / "trusted"
    store.mkdir()
    public = store / "release.pub"
    private.with_suffix(".pub").rename(public)
    return public, private


def write_policy(path: Path, public: Path, enforce: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[trust]\nkeys = ["{public}"]\n[enforce]\n{enforce}')
    return path


# ------------------------------------------------------------------ clean


def test_a_clean_environment_exits_0_with_no_finding_even_strict(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    policy = write_policy(tmp_path / "etc" / "policy.toml", trust[0])
    models = tmp_path / "models"
    models.mkdir()
    result, report = doctor(
        "--strict", "--models", models, "--keys", trust[1], MODELSIGN_POLICY=str(policy)
    )
    assert result.returncode == 0, report["findings"]
    assert report["findings"] == []
    assert report["enforcement"]["active"] is True
    assert report["loader_settings"]["torch_default_weights_only"] is True
    assert report["checked"]["private_keys"] == [str(trust[1])]
    assert str(policy) in report["checked"]["policy_files"]
    assert {p["name"] for p in report["packages"]} >= {"torch", "numpy", "transformers"}


def test_without_enforcement_only_a_medium_finding_and_exit_0(tmp_path: Path) -> None:
    result, report = doctor()
    assert result.returncode == 0
    assert codes(report) == {"enforcement-off": "medium"}
    result, report = doctor("--strict")
    assert (result.returncode, codes(report)) == (1, {"enforcement-off": "high"})


def test_text_output_says_what_it_means_and_how_to_fix_it(tmp_path: Path) -> None:
    site = str(fake_site(tmp_path, torch="2.5.1"))
    result = doctor_text(PYTHONPATH=site)
    assert result.returncode == 1, result.stderr
    assert "HIGH   torch 2.5.1 has CVE-2025-32434 (fixed in 2.6.0)" in result.stdout
    assert "means: torch.load(..., weights_only=True) can still run code" in result.stdout
    assert "fix:   Upgrade torch to 2.6.0 or later" in result.stdout
    assert "see:   https://github.com/advisories/GHSA-53q9-r3pm-6pq6" in result.stdout
    assert "torch.load default: weights_only=False" in result.stdout
    quiet = doctor_text("-q", PYTHONPATH=site)
    assert (quiet.returncode, quiet.stdout) == (1, "")
    assert "HIGH: torch 2.5.1 has CVE-2025-32434" in quiet.stderr
    quiet = doctor_text("-q")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_doctor_imports_no_loader_library() -> None:
    """Versions come from metadata: doctor never pays for importing torch."""
    probe = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from modelsign._cli import app\n"
        "get_command(app).main(['doctor', '--json'], standalone_mode=False)\n"
        "heavy = sorted({'torch', 'transformers', 'numpy', 'joblib', 'safetensors', 'lightning'}"
        " & set(sys.modules))\n"
        "print('IMPORTED', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, env=clean_env()
    )
    assert '"healthy"' in result.stdout, result.stderr
    assert "IMPORTED []\n" in result.stderr, result.stderr


# ------------------------------------------------------------------ advisories


#: (installed versions, the advisories doctor must report for them). Every
#: entry of the table appears here at least once (checked below).
CASES: list[tuple[dict[str, str], dict[str, str]]] = [
    (
        {"torch": "2.5.1"},
        {"CVE-2025-32434": "high", "CVE-2026-24747": "high", "CVE-2026-4538": "medium"},
    ),
    (
        {"torch": "2.5.1+cu121"},
        {"CVE-2025-32434": "high", "CVE-2026-24747": "high", "CVE-2026-4538": "medium"},
    ),
    ({"torch": "2.9.1"}, {"CVE-2026-24747": "high", "CVE-2026-4538": "medium"}),
    ({"torch": "2.10.0+cu128"}, {"CVE-2026-4538": "medium"}),
    ({"torch": "2.11.0"}, {}),
    (
        {"transformers": "4.35.2"},
        {
            "CVE-2023-7018": "high",
            "CVE-2023-6730": "high",
            "CVE-2024-3568": "high",
            "CVE-2026-4372": "high",
            "CVE-2026-1839": "medium",
        },
    ),
    ({"transformers": "4.57.6"}, {"CVE-2026-4372": "high", "CVE-2026-1839": "medium"}),
    ({"transformers": "5.2.0"}, {"CVE-2026-4372": "high"}),
    ({"transformers": "5.3.0"}, {}),
    ({"numpy": "1.16.2"}, {"CVE-2019-6446": "high"}),
    ({"numpy": "1.16.3"}, {}),
    ({"joblib": "1.1.0"}, {"CVE-2022-21797": "medium"}),
    ({"joblib": "1.1.1"}, {}),
    (
        {"pytorch_lightning": "1.5.10"},
        {"CVE-2021-4118": "high", "CVE-2022-0845": "medium", "GHSA-qqmf-gpg7-g8gw": "high"},
    ),
    ({"lightning": "2.6.5"}, {"GHSA-qqmf-gpg7-g8gw": "high"}),
    ({"lightning": "2.6.6"}, {}),
]


@pytest.mark.parametrize(
    ("versions", "expected"),
    CASES,
    ids=[" ".join(f"{k}={v}" for k, v in c[0].items()) for c in CASES],
)
def test_an_installed_version_reports_its_advisories(
    tmp_path: Path, versions: dict[str, str], expected: dict[str, str]
) -> None:
    result, report = doctor(site=fake_site(tmp_path, **versions))
    found = {k: v for k, v in codes(report).items() if k.startswith(("CVE-", "GHSA-"))}
    assert found == expected
    high = "high" in expected.values()
    assert result.returncode == (1 if high else 0)
    for finding in report["findings"]:
        if finding["code"] == "advisory":
            ((name, version),) = versions.items()
            assert finding["subject"] == f"{name.replace('_', '-')}=={version}"
            assert finding["advisory"]["source"].startswith("https://")
            fixed = finding["advisory"]["fixed"]
            if fixed is None:
                assert "(unfixed)" in finding["title"]
                assert "No release fixes it" in finding["meaning"]
            else:
                assert f"fixed in {fixed}" in finding["title"]
                assert f"Upgrade {finding['advisory']['package']} to {fixed}" in finding["fix"]


def test_every_advisory_of_the_table_is_exercised_by_a_case() -> None:
    exercised = {(pkg.replace("_", "-"), i) for v, e in CASES for pkg in v for i in e}
    table = {(a.package, a.id) for a in shipped_table().advisories}
    assert table <= exercised, table - exercised


def test_an_unparsable_version_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    result, report = doctor(site=fake_site(tmp_path, torch="nightly-build"))
    assert codes(report)["unparsable-version"] == "medium"
    assert result.returncode == 0


# ------------------------------------------------------------------ the table


def test_the_shipped_table_is_well_formed_and_holds_the_required_advisories() -> None:
    table = shipped_table()
    by_id = {(a.package, a.id): a for a in table.advisories}
    for package, ident, fixed in [
        ("torch", "CVE-2025-32434", "2.6.0"),
        ("torch", "CVE-2026-24747", "2.10.0"),
        ("transformers", "CVE-2026-4372", "5.3.0"),
        ("transformers", "CVE-2023-7018", "4.36.0"),
        ("joblib", "CVE-2022-21797", "1.1.1"),
        ("pytorch-lightning", "CVE-2021-4118", "1.6.0"),
        ("pytorch-lightning", "CVE-2022-0845", "1.6.0"),
    ]:
        assert by_id[package, ident].fixed == fixed
    assert by_id["torch", "CVE-2026-4538"].fixed is None  # unfixed when last seen
    for a in table.advisories:
        # The fix itself is not affected, the release just before it is.
        if a.fixed is not None:
            fixed = parse_version(a.fixed)
            assert fixed is not None
            assert not a.affects(fixed), a.id
            assert a.affects(_just_before(fixed)), a.id


def _just_before(version: Version) -> Version:
    """5.0.0rc3 -> 5.0.0rc2; 2.6.0 -> 2.5.999; 1.16.3 -> 1.16.2; 2.0.0 -> 1.999.999."""
    if version.pre is not None and version.pre[1] > 0:
        return Version(f"{version.base_version}{version.pre[0]}{version.pre[1] - 1}")
    major, minor, micro = (*version.release, 0, 0)[:3]
    if micro:
        return Version(f"{major}.{minor}.{micro - 1}")
    if minor:
        return Version(f"{major}.{minor - 1}.999")
    return Version(f"{major - 1}.999.999")


GOOD = """
reviewed = "2026-12-03"
[[advisory]]
id = "CVE-2025-32434"
package = "torch"
affected = "<2.6.0"
fixed = "2.6.0"
severity = "high"
summary = "s"
source = "https://example.org/a"
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('id = "CVE-2025-32434"', 'id = "CVE-25-1"'), "'CVE-25-1' is not a CVE, GHSA or PYSEC id"),
        (
            ('fixed = "2.6.0"', 'fixed = "2.5.0"'),
            "the fixed release 2.5.0 is in the affected range",
        ),
        (('fixed = "2.6.0"', 'fixed = "two"'), "fixed 'two' is not a PEP 440 version"),
        (('fixed = "2.6.0"\n', ""), "an unfixed advisory needs a mitigation"),
        (('affected = "<2.6.0"', 'affected = "before 2.6"'), "is not a PEP 440 version range"),
        (('affected = "<2.6.0"', 'affected = ""'), "affected must be a non-empty string"),
        (('severity = "high"', 'severity = "critical"'), "severity 'critical' is not one of"),
        (('source = "https://example.org/a"', 'source = "http://x"'), "is not an https URL"),
        (('package = "torch"', 'package = "PyTorch_Lightning"'), "is not a normalized name"),
        (('summary = "s"', 'summary = "s"\nsumary = "t"'), "unknown keys ['sumary']"),
        (('summary = "s"\n', ""), "missing keys ['summary']"),
        (('reviewed = "2026-12-03"', 'reviewed = "yesterday"'), "is not a YYYY-MM-DD date"),
        (("[[advisory]]", "[advisory]"), "no [[advisory]] entries"),
    ],
)
def test_a_malformed_table_is_refused_naming_the_entry(
    change: tuple[str, str], message: str
) -> None:
    assert parse_table(GOOD.encode()).advisories[0].fixed == "2.6.0"
    bad = GOOD.replace(*change, 1)
    assert bad != GOOD
    with pytest.raises(ValueError, match="advisories.toml") as info:
        parse_table(bad.encode())
    assert message in str(info.value)


def test_a_duplicate_entry_is_refused() -> None:
    twice = GOOD + GOOD.split("\n", 2)[2]
    with pytest.raises(ValueError, match="CVE-2025-32434 is listed twice for torch"):
        parse_table(twice.encode())


def test_version_ranges_are_pep_440_with_local_builds_and_prereleases() -> None:
    below = parse_range("<2.6.0")
    for text, affected in [
        ("2.5.1", True),
        ("2.5.1+cpu", True),
        ("2.10.0", False),  # not "2.10" < "2.6" as strings compare
        ("2.6.0", False),
        ("1.13.1", True),
    ]:
        version = parse_version(text)
        assert version is not None
        assert in_range(version, below) is affected, text
    assert in_range(parse_version("2.10.0+cu128") or 0, parse_range("<=2.10.0"))  # type: ignore[arg-type]
    assert in_range(parse_version("5.0.0rc2") or 0, parse_range("<5.0.0rc3"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ loader settings


def test_force_no_weights_only_is_high(tmp_path: Path) -> None:
    result, report = doctor(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    assert codes(report)["torch-force-no-weights-only"] == "high"
    assert result.returncode == 1
    assert report["loader_settings"]["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"


def test_force_weights_only_is_fine_and_an_unread_value_is_low() -> None:
    result, report = doctor(TORCH_FORCE_WEIGHTS_ONLY_LOAD="YES")
    assert codes(report) == {"enforcement-off": "medium"}
    result, report = doctor(TORCH_FORCE_WEIGHTS_ONLY_LOAD="on")
    assert codes(report)["torch-switch-ignored"] == "low"
    assert result.returncode == 0
    result, report = doctor(TORCH_FORCE_WEIGHTS_ONLY_LOAD="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="y")
    assert codes(report)["torch-force-both"] == "medium"


def test_torch_reads_its_switches_as_doctor_says(tmp_path: Path) -> None:
    """The findings' meanings, checked against the real torch: with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, a plain torch.load unpickles a global
    weights_only refuses; with both switches, every torch.load raises."""
    checkpoint = tmp_path / "ns.pt"
    probe = (
        "import argparse, sys, torch\n"
        f"path = {str(checkpoint)!r}\n"
        "if sys.argv[1] == 'save':\n"
        "    torch.save({'args': argparse.Namespace(a=1)}, path)\n"
        "else:\n"
        "    try:\n"
        "        torch.load(path)\n"
        "        print('UNPICKLED')\n"
        "    except Exception as e:\n"
        "        print('REFUSED', type(e).__name__)\n"
    )
    env = clean_env()

    def load(**switches: str) -> str:
        run = [sys.executable, "-c", probe, "load"]
        out = subprocess.run(run, capture_output=True, text=True, check=True, env=env | switches)
        return out.stdout.strip()

    subprocess.run([sys.executable, "-c", probe, "save"], check=True, env=env)
    assert load().startswith("REFUSED")
    assert load(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1") == "UNPICKLED"
    assert load(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="on").startswith("REFUSED")  # not a true value
    both = load(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", TORCH_FORCE_WEIGHTS_ONLY_LOAD="1")
    assert both == "REFUSED RuntimeError"


def test_an_old_torch_defaults_to_unpickling(tmp_path: Path) -> None:
    _, report = doctor(site=fake_site(tmp_path, torch="2.4.0"))
    assert report["loader_settings"]["torch_default_weights_only"] is False
    assert codes(report)["torch-default-unpickles"] == "medium"
    _, report = doctor(site=fake_site(tmp_path / "new", torch="2.6.0"))
    assert report["loader_settings"]["torch_default_weights_only"] is True
    assert "torch-default-unpickles" not in codes(report)


# ------------------------------------------------------------------ enforcement and policy


def test_a_policy_that_cannot_be_loaded_is_high(tmp_path: Path) -> None:
    result, report = doctor(MODELSIGN_POLICY=str(tmp_path / "nope.toml"))
    assert codes(report)["policy-unloadable"] == "high"
    assert result.returncode == 1
    finding = next(f for f in report["findings"] if f["code"] == "policy-unloadable")
    assert "nope.toml: no policy file" in finding["meaning"]
    assert report["enforcement"]["active"] is False


def test_a_policy_with_no_trust_anchor_is_high(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("[trust]\nkeys = []\n")
    result, report = doctor(MODELSIGN_POLICY=str(empty))
    assert codes(report)["policy-no-anchor"] == "high"
    assert result.returncode == 1
    result, report = doctor("--policy", empty)  # given, not in the environment
    assert codes(report) == {"enforcement-off": "medium", "policy-no-anchor": "high"}
    finding = next(f for f in report["findings"] if f["code"] == "policy-no-anchor")
    assert finding["subject"] == str(empty)


def test_warn_mode_is_medium_and_high_in_production(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    policy = write_policy(tmp_path / "p" / "policy.toml", trust[0], 'mode = "warn"\n')
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert (result.returncode, codes(report)) == (0, {"warn-mode": "medium"})
    result, report = doctor("--strict", MODELSIGN_POLICY=str(policy))
    assert (result.returncode, codes(report)) == (1, {"warn-mode": "high"})


def test_a_scope_that_misses_the_model_folders_is_high(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    guarded, other = tmp_path / "srv" / "guarded", tmp_path / "srv" / "other"
    (guarded / "bert").mkdir(parents=True)
    other.mkdir()
    policy = write_policy(tmp_path / "p" / "policy.toml", trust[0], f'scope = ["{guarded}"]\n')
    result, report = doctor("--models", guarded / "bert", MODELSIGN_POLICY=str(policy))
    assert (result.returncode, report["findings"]) == (0, [])
    result, report = doctor("--models", guarded, "--models", other, MODELSIGN_POLICY=str(policy))
    assert result.returncode == 1
    misses = [f for f in report["findings"] if f["code"] == "scope-misses-models"]
    assert [(f["subject"], f["severity"]) for f in misses] == [(str(other), "high")]
    assert str(guarded) in misses[0]["meaning"]
    result, report = doctor("--models", tmp_path / "absent", MODELSIGN_POLICY=str(policy))
    assert result.returncode == 2
    assert "--models" in report["error"]["message"]
    assert "absent: no such file or folder" in report["error"]["message"]


def test_policy_files_and_folders_others_can_write_are_high(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    policy = write_policy(tmp_path / "etc" / "policy.toml", trust[0])
    policy.chmod(0o666)
    trust[0].chmod(0o664)
    result, report = doctor("--policy", policy, MODELSIGN_POLICY=str(policy))
    writable = {f["subject"]: f for f in report["findings"] if f["code"] == "policy-file-writable"}
    assert set(writable) == {str(policy), str(trust[0])}
    assert "writable by group and others (mode 0666)" in writable[str(policy)]["title"]
    assert "writable by group (mode 0664)" in writable[str(trust[0])]["title"]
    assert result.returncode == 1
    policy.chmod(0o644)
    trust[0].chmod(0o644)
    # A folder on the way: whoever writes it can swap the policy for another.
    (tmp_path / "etc").chmod(0o777)
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert codes(report) == {"policy-file-writable": "high"}
    assert report["findings"][0]["subject"] == str(tmp_path / "etc")
    (tmp_path / "etc").chmod(0o1777)  # sticky, like /tmp: files cannot be swapped
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert (result.returncode, report["findings"]) == (0, [])


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_policy_file_of_another_user_is_medium(tmp_path: Path, trust: tuple[Path, Path]) -> None:
    policy = write_policy(tmp_path / "etc" / "policy.toml", trust[0])
    os.chown(policy, 4242, -1)
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert (result.returncode, codes(report)) == (0, {"policy-file-owner": "medium"})
    assert "(uid 4242)" in report["findings"][0]["title"]


def test_autoload_hook_missing_is_high_when_the_policy_variable_is_set(tmp_path: Path) -> None:
    """The venv's own hook cannot be removed under the suite: the check is
    given an environment without it."""
    pth = tmp_path / "modelsign-autoload.pth"
    state = Enforcement("/etc/p.toml", pth, False, None, None)
    (finding,) = enforcement_findings(state, strict=False)
    assert (finding.code, finding.severity, finding.subject) == (
        "autoload-missing",
        "high",
        str(pth),
    )
    assert "enforcement is NOT active although it is set" in finding.meaning
    unset = Enforcement(None, pth, False, None, None)
    assert [(f.code, f.severity) for f in enforcement_findings(unset, strict=False)] == [
        ("autoload-missing", "medium"),
        ("enforcement-off", "medium"),
    ]


# ------------------------------------------------------------------ keys


def test_private_keys_others_can_read_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    keys.write_keypair(keys.generate("ed25519"), folder / "open", None)
    keys.write_keypair(keys.generate("ecdsa-p256"), folder / "sub" / "locked", b"secret")
    keys.write_keypair(keys.generate("ed25519"), folder / "fine", None)
    (folder / "open.key").chmod(0o644)
    (folder / "sub" / "locked.key").chmod(0o640)
    (folder / "notes.txt").write_text("no key here")
    result, report = doctor("--keys", folder)
    exposed = {f["subject"]: f for f in report["findings"] if f["code"] == "private-key-exposed"}
    assert set(exposed) == {str(folder / "open.key"), str(folder / "sub" / "locked.key")}
    open_key = exposed[str(folder / "open.key")]
    assert open_key["severity"] == "high"
    assert (
        "private key (not encrypted) is readable by group and others (mode 0644)"
        in (open_key["title"])
    )
    assert open_key["fix"].startswith(f"chmod 600 {folder / 'open.key'}")
    locked = exposed[str(folder / "sub" / "locked.key")]
    assert locked["severity"] == "medium"
    assert "encrypted private key is readable by group (mode 0640)" in locked["title"]
    assert sorted(report["checked"]["private_keys"]) == sorted(
        str(folder / n) for n in ("fine.key", "open.key", "sub/locked.key")
    )
    assert result.returncode == 1
    (folder / "open.key").chmod(0o600)
    (folder / "sub" / "locked.key").chmod(0o600)
    result, report = doctor("--key", folder / "open.key", "--keys", folder / "sub")
    assert (result.returncode, codes(report)) == (0, {"enforcement-off": "medium"})
    result, report = doctor("--keys", tmp_path / "absent")
    assert result.returncode == 2


def test_a_private_key_writable_by_others_is_high_even_encrypted(tmp_path: Path) -> None:
    keys.write_keypair(keys.generate("ed25519"), tmp_path / "k", b"pw")
    (tmp_path / "k.key").chmod(0o602)
    _, report = doctor("--keys", tmp_path / "k.key")
    (finding,) = (f for f in report["findings"] if f["code"] == "private-key-exposed")
    assert finding["severity"] == "high"
    assert "encrypted private key is writable by others (mode 0602)" in finding["title"]


def test_a_private_key_beside_a_trusted_public_key(tmp_path: Path) -> None:
    prefix = tmp_path / "trusted" / "release"
    keys.write_keypair(keys.generate("ed25519"), prefix, None)
    policy = write_policy(tmp_path / "policy.toml", prefix.with_suffix(".pub"))
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert (result.returncode, codes(report)) == (0, {"private-key-in-trust-store": "low"})
    prefix.with_suffix(".key").chmod(0o644)
    result, report = doctor(MODELSIGN_POLICY=str(policy))
    assert codes(report) == {"private-key-exposed": "high", "private-key-in-trust-store": "low"}
    assert stat.S_IMODE(os.stat(prefix.with_suffix(".key")).st_mode) == 0o644


# ------------------------------------------------------------------ pip-audit


def fake_pip_audit(folder: Path, report: object, code: int = 1) -> Path:
    """A stand-in for pip-audit (which needs the network): it checks that
    doctor asks for JSON about this interpreter's paths, and prints ``report``."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "pip-audit"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:4] == ['--format', 'json', '--progress-spinner', 'off'], args\n"
        "assert '--path' in args, args\n"
        f"print({json.dumps(report)!r})\n"
        f"sys.exit({code})\n"
    )
    program.chmod(0o755)
    return folder


def test_pip_audit_findings_are_merged_without_duplicates(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {
                "name": "torch",
                "version": "2.5.1",
                "vulns": [
                    {  # the table's CVE-2025-32434, under its GHSA name
                        "id": "GHSA-53q9-r3pm-6pq6",
                        "fix_versions": ["2.6.0"],
                        "aliases": ["CVE-2025-32434"],
                        "description": "dup",
                    },
                    {
                        "id": "PYSEC-2025-41",
                        "fix_versions": ["2.7.1"],
                        "aliases": ["CVE-2025-2953"],
                        "description": "torch.mkldnn_max_pool2d denial of service",
                    },
                ],
            },
            {"name": "private-pkg", "skip_reason": "not on PyPI"},
        ],
        "fixes": [],
    }
    bin_dir = fake_pip_audit(tmp_path / "bin", report)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    result, doc = doctor("--pip-audit", site=fake_site(tmp_path, torch="2.5.1"), PATH=path)
    audit = [f for f in doc["findings"] if f["origin"] == "pip-audit"]
    assert [(f["advisory"]["id"], f["severity"]) for f in audit] == [("PYSEC-2025-41", "medium")]
    assert audit[0]["fix"] == "Upgrade torch to 2.7.1 or later."
    assert codes(doc)["CVE-2025-32434"] == "high"  # reported once, from the table
    assert doc["checked"]["pip_audit"][0] == str(bin_dir / "pip-audit")
    assert result.returncode == 1


def test_pip_audit_not_installed_or_failing_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result, doc = doctor("--pip-audit", PATH=str(empty))
    assert result.returncode == 2
    assert "pip-audit is not installed (pip install pip-audit)" in doc["error"]["message"]
    bin_dir = fake_pip_audit(tmp_path / "bin", "not json", code=2)
    result, doc = doctor("--pip-audit", PATH=str(bin_dir))
    assert result.returncode == 2
    assert "exited with 2 without a JSON report" in doc["error"]["message"]


def test_hostile_values_reach_the_terminal_quoted(tmp_path: Path) -> None:
    result = doctor_text(TORCH_FORCE_WEIGHTS_ONLY_LOAD="\x1b[2Jgone")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "torch-switch-ignored" not in result.stdout  # codes are for --json
    assert "'\\x1b[2Jgone' is not a value torch reads as set" in result.stdout


def test_a_policy_reached_through_a_link_in_a_writable_folder(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    policy = write_policy(tmp_path / "real" / "policy.toml", trust[0])
    links = tmp_path / "links"
    links.mkdir()
    (links / "policy.toml").symlink_to(policy)
    links.chmod(0o777)  # whoever writes here can point the link at their own policy
    result, report = doctor(MODELSIGN_POLICY=str(links / "policy.toml"))
    assert codes(report) == {"policy-file-writable": "high"}
    assert report["findings"][0]["subject"] == str(links)
    assert report["checked"]["policy_files"][0] == str(policy)
    assert result.returncode == 1


def test_the_key_search_is_bounded_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsign._doctor import _trust

    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("x")
    monkeypatch.setattr(_trust, "MAX_FILES_SEARCHED", 3)
    checked = _trust.Checked()
    (finding,) = _trust.private_key_findings([tmp_path], None, checked)
    assert (finding.code, finding.severity, finding.subject) == (
        "key-search-truncated",
        "low",
        str(tmp_path),
    )
    assert "stopped after 3 files" in finding.title

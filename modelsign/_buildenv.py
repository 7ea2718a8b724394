"""What the build environment says about a training run, for its provenance:
the training code's git checkout, the CI system's variables, the versions of
the frameworks installed.

Read only here, at the edge (``git`` is run, ``os.environ`` is read), so that
:mod:`modelsign.provenance` builds statements from plain values. Which
variables are read is listed in ``docs/adr/0004-provenance.md``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelsign.errors import UsageError

__all__ = [
    "FRAMEWORKS",
    "CiRun",
    "GitCheckout",
    "ci_run",
    "framework_versions",
    "git_checkout",
    "local_builder_id",
    "strip_credentials",
]

#: Distributions whose versions are recorded when installed (python always is).
FRAMEWORKS: tuple[str, ...] = (
    "torch",
    "transformers",
    "accelerate",
    "lightning",
    "pytorch-lightning",
    "peft",
    "datasets",
    "safetensors",
    "numpy",
    "tensorflow",
    "keras",
    "jax",
    "scikit-learn",
    "modelsign",
)

_GIT_TIMEOUT = 30.0
_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class GitCheckout:
    """The training code: where it comes from and which commit was checked out."""

    #: The repository's URL (credentials removed), or ``file://`` of the tree.
    url: str
    commit: str
    #: ``refs/heads/main``, ``refs/tags/v1``; None for a detached HEAD.
    ref: str | None
    #: Tracked files differ from the commit (staged or not).
    dirty: bool


@dataclass(frozen=True)
class CiRun:
    """What a CI system's variables say about the run."""

    system: str  # "github-actions" or "gitlab-ci"
    builder_id: str
    invocation_id: str | None
    code: GitCheckout | None
    #: Extra facts recorded as internal parameters (event, runner, ...).
    details: Mapping[str, str]


def strip_credentials(url: str) -> str:
    """``url`` without a user name or password (a CI checkout may have a token
    in its remote URL: it must never end up in a signed, published document)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.netloc or "@" not in parts.netloc:
        if "://" not in url and "@" in url.partition(":")[0]:  # scp-like user@host:path
            return url.partition("@")[2]
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def _git(tree: Path, *args: str) -> str | None:
    """Run git read-only in ``tree``; None when it fails. The repository's
    own configuration cannot make it run a program: fsmonitor is off and no
    optional lock is taken."""
    git = shutil.which("git")
    if git is None:
        raise UsageError("git is not installed: it is needed to record the training code")
    try:
        result = subprocess.run(  # noqa: S603 - git, with fixed arguments
            [git, "-c", "core.fsmonitor=false", "--no-optional-locks", "-C", str(tree), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_checkout(tree: Path) -> GitCheckout | None:
    """The git checkout ``tree`` is in, or None when it is in none.

    Raises:
        UsageError: git is not installed.
    """
    top = _git(tree, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    commit = _git(tree, "rev-parse", "--verify", "HEAD")
    if commit is None or not _HEX.match(commit):
        return None  # a repository without a commit
    ref = _git(tree, "symbolic-ref", "-q", "HEAD") or None
    remotes = (_git(tree, "remote") or "").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(tree, "remote", "get-url", remote) if remote else None
    status = _git(tree, "status", "--porcelain", "--untracked-files=no")
    return GitCheckout(
        url=strip_credentials(url) if url else Path(top).absolute().as_uri(),
        commit=commit,
        ref=ref,
        dirty=status is None or bool(status),
    )


def ci_run(environ: Mapping[str, str]) -> CiRun | None:
    """The CI run ``environ`` describes: GitHub Actions or GitLab CI, else None."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return _github(environ)
    if environ.get("GITLAB_CI") == "true":
        return _gitlab(environ)
    return None


def _github(env: Mapping[str, str]) -> CiRun | None:
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo, workflow = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_WORKFLOW_REF")
    if not repo or not workflow:
        return None
    run, attempt = env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT", "1")
    sha, ref = env.get("GITHUB_SHA", ""), env.get("GITHUB_REF") or None
    details = {
        k: v
        for k, v in (
            ("event_name", env.get("GITHUB_EVENT_NAME")),
            ("repository_id", env.get("GITHUB_REPOSITORY_ID")),
            ("runner_environment", env.get("RUNNER_ENVIRONMENT")),
            ("workflow_sha", env.get("GITHUB_WORKFLOW_SHA")),
        )
        if v
    }
    return CiRun(
        system="github-actions",
        builder_id=f"{server}/{workflow}",
        invocation_id=f"{server}/{repo}/actions/runs/{run}/attempts/{attempt}" if run else None,
        code=GitCheckout(f"{server}/{repo}", sha, ref, False) if _HEX.match(sha) else None,
        details=details,
    )


def _gitlab(env: Mapping[str, str]) -> CiRun | None:
    project_url, config = env.get("CI_PROJECT_URL"), env.get("CI_CONFIG_PATH", ".gitlab-ci.yml")
    if not project_url:
        return None
    project_url = strip_credentials(project_url).rstrip("/")
    tag = env.get("CI_COMMIT_TAG")
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME")
    ref = f"refs/tags/{tag}" if tag else (f"refs/heads/{branch}" if branch else None)
    sha = env.get("CI_COMMIT_SHA", "")
    details = {
        k: v
        for k, v in (
            ("pipeline_id", env.get("CI_PIPELINE_ID")),
            ("pipeline_source", env.get("CI_PIPELINE_SOURCE")),
            ("runner_id", env.get("CI_RUNNER_ID")),
        )
        if v
    }
    return CiRun(
        system="gitlab-ci",
        # The form of the Fulcio certificate's identity for a GitLab pipeline.
        builder_id=f"{project_url}//{config}@{ref}" if ref else f"{project_url}//{config}",
        invocation_id=env.get("CI_JOB_URL"),
        code=GitCheckout(project_url, sha, ref, False) if _HEX.match(sha) else None,
        details=details,
    )


def local_builder_id() -> str:
    """The builder of a run outside CI: this machine."""
    return f"urn:modelsign:local:{socket.gethostname() or 'unknown-host'}"


def framework_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """``python`` and every installed :data:`FRAMEWORKS` distribution (and
    ``extra``), with their versions."""
    versions = {"python": platform.python_version()}
    for name in (*FRAMEWORKS, *extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions

"""Member names: each safe, none colliding with another."""

from __future__ import annotations

from modelsign._paths import collision_key, name_problem
from modelsign.errors import UnsafeArchiveError


def check_member_name(display_name: str, member: str) -> None:
    """Refuse names that differ between readers or escape the extraction
    directory (a directory entry's trailing ``/`` aside)."""
    problem = name_problem(member[:-1] if member.endswith("/") else member)
    if problem is not None:
        raise UnsafeArchiveError(f"{display_name}: member name {member!r} {problem}")


def check_unique_names(display_name: str, names: list[tuple[str, bool]]) -> None:
    """Refuse duplicates, case/Unicode collisions and files used as directories.

    ``names`` are (name without trailing slash, is_directory) in archive order.
    """
    exact: set[str] = set()
    folded: dict[str, str] = {}
    files: dict[str, str] = {}
    for member, is_dir in names:
        if member in exact:
            raise UnsafeArchiveError(
                f"{display_name}: duplicate member name {member!r} (readers disagree on "
                "which copy counts: torch takes the first, zipfile the last)"
            )
        exact.add(member)
        key = collision_key(member)
        if key in folded:
            raise UnsafeArchiveError(
                f"{display_name}: member names {folded[key]!r} and {member!r} collide "
                "case-insensitively (torch looks names up case-insensitively)"
            )
        folded[key] = member
        if not is_dir:
            files[key] = member
    for member, _ in names:
        parts = collision_key(member).split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise UnsafeArchiveError(
                    f"{display_name}: member {files[parent]!r} is a file but member "
                    f"{member!r} uses it as a directory"
                )

"""Where the store is, and the fast read path: no dulwich imported here.

The store is the tree of commits on one branch (default ``refs/heads/beadsmail``)
in the repository's *common* git dir, so every linked worktree sees the same
store. Records live in ``.beads/log/<replica>/<date>-<n>.jsonl`` segments; each
replica (clone) appends only to its own. A read needs only the commit ids of the
store ref and of its remote-tracking copies (``refs/remotes/*/<branch>``), which
this module reads from the ref files directly. Writing, tree reading and
transport live in ``store.writer`` and ``store.remote`` (the only dulwich users).
"""

from __future__ import annotations

import os
from pathlib import Path

from beadsmail.errors import InvalidInput, NotARepository

STATE_DIR = "beadsmail"


class Location:
    """Paths of one checkout: its worktree root, its git dir and the common git dir."""

    __slots__ = ("worktree", "gitdir", "common")

    def __init__(self, worktree: Path | None, gitdir: Path, common: Path) -> None:
        self.worktree, self.gitdir, self.common = worktree, gitdir, common

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.worktree, self.gitdir, self.common) == (
            other.worktree, other.gitdir, other.common)

    def __hash__(self) -> int:
        return hash((self.worktree, self.gitdir, self.common))

    def __repr__(self) -> str:
        return f"Location({self.worktree!r}, {self.gitdir!r}, {self.common!r})"

    @property
    def state_dir(self) -> Path:
        """``<common>/beadsmail``: index, lock, replica id. Never committed."""
        return self.common / STATE_DIR

    @property
    def main_worktree(self) -> Path | None:
        return self.common.parent if self.common.name == ".git" else self.worktree


def _read_gitfile(path: Path) -> Path:
    text = path.read_text("utf-8", "replace").strip()
    if not text.startswith("gitdir:"):
        raise NotARepository(f"{path} is not a valid .git file; run 'bd init' in a git repository")
    target = Path(text[len("gitdir:"):].strip())
    return (path.parent / target).resolve() if not target.is_absolute() else target


def _common_of(gitdir: Path) -> Path:
    common_file = gitdir / "commondir"
    if common_file.is_file():
        target = Path(common_file.read_text("utf-8").strip())
        return (gitdir / target).resolve() if not target.is_absolute() else target
    return gitdir


def locate(start: str | os.PathLike[str] | None = None) -> Location:
    """Find the git repository containing ``start`` (a worktree, a subdirectory, a bare repo)."""
    if "\x00" in os.fspath(start or ""):
        raise InvalidInput("the path contains a NUL character; give a plain directory path")
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        dotgit = d / ".git"
        if dotgit.is_dir():
            return Location(d, dotgit, _common_of(dotgit))
        if dotgit.is_file():
            gitdir = _read_gitfile(dotgit)
            return Location(d, gitdir, _common_of(gitdir))
        if (d / "HEAD").is_file() and (d / "objects").is_dir() and (d / "refs").is_dir():
            return Location(None, d, _common_of(d))
    raise NotARepository(
        f"not inside a git repository ({here}); run 'bd init' here to create one"
    )


def _packed_refs(common: Path) -> dict[str, str]:
    try:
        text = (common / "packed-refs").read_text("utf-8")
    except FileNotFoundError:
        return {}
    refs = {}
    for line in text.splitlines():
        if line and line[0] not in "#^":
            sha, _, name = line.partition(" ")
            refs[name] = sha
    return refs


def read_ref(common: Path, ref: str) -> str | None:
    """The commit id a ref points at, or None."""
    try:
        sha = (common / ref).read_text("ascii").strip()
        if len(sha) == 40:
            return sha
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    return _packed_refs(common).get(ref)


def branch_ref(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def store_heads(common: Path, branch: str) -> dict[str, str]:
    """The local store ref and every ``refs/remotes/*/<branch>`` copy, name -> commit id."""
    local = branch_ref(branch)
    short = local.removeprefix("refs/heads/")
    heads: dict[str, str] = {}
    packed = _packed_refs(common)
    for name, sha in packed.items():
        if name == local or (name.startswith("refs/remotes/") and name.endswith("/" + short)
                             and name.count("/") == 3 + short.count("/")):
            heads[name] = sha
    sha = read_ref_file(common / local)
    if sha:
        heads[local] = sha
    remotes = common / "refs" / "remotes"
    if remotes.is_dir():
        for remote in os.listdir(remotes):
            sha = read_ref_file(remotes / remote / short)
            if sha:
                heads[f"refs/remotes/{remote}/{short}"] = sha
    return heads


def heads_stamp(common: Path, branch: str) -> tuple:
    """A cheap fingerprint of everything ``store_heads`` reads (stat calls only).

    Waiters poll this; when it changes they read the heads themselves.
    """
    short = branch_ref(branch).removeprefix("refs/heads/")
    paths = [common / branch_ref(branch), common / "packed-refs", common / "refs" / "remotes"]
    try:
        paths += [common / "refs" / "remotes" / r / short for r in os.listdir(paths[2])]
    except (FileNotFoundError, NotADirectoryError):
        pass
    stamp = []
    for path in paths:
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def read_ref_file(path: Path) -> str | None:
    try:
        sha = path.read_text("ascii").strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return sha if len(sha) == 40 else None


def replica_id(loc: Location, create: bool = True) -> str | None:
    """This clone's replica id, kept in the common git dir and never synced."""
    path = loc.state_dir / "replica"
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        if not create:
            return None
    from beadsmail.records import new_replica_id

    loc.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"replica.{os.getpid()}.tmp")
    tmp.write_text(new_replica_id() + "\n", "ascii")
    try:
        os.link(tmp, path)  # atomic: the first clone-local writer wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text("ascii").strip()

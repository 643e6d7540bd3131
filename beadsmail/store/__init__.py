"""Where the store is, and the fast read path: no dulwich imported here.

The store is the tree of commits on one branch (default ``refs/heads/beadsmail``)
in the repository's *common* git dir, so every linked worktree sees the same
store. Records live in ``.beads/log/<replica>/<date>-<n>.jsonl`` segments; each
replica (clone) appends only to its own. A read needs only the commit ids of the
store ref, of the feed refs and of their remote-tracking copies, which
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


FEEDS = ".feeds"  # refs/heads/<branch>.feeds/<replica>: one feed ref per replica
FEED_NAME_LEN = 12  # (as boundary.REPLICA_RE)


def feed_prefix(branch: str) -> str:
    """``refs/heads/<branch>.feeds/``: where each replica publishes its own feed.

    A sibling of the store branch, not a child: git cannot hold both
    ``refs/heads/beadsmail`` and ``refs/heads/beadsmail/<x>``."""
    return branch_ref(branch) + FEEDS + "/"


def feed_ref(branch: str, replica: str) -> str:
    return feed_prefix(branch) + replica


def is_feed_name(name: str) -> bool:
    """A replica id as a feed ref's last component: 12 lower-case letters or digits."""
    return len(name) == FEED_NAME_LEN and all(c.isdigit() or "a" <= c <= "z" for c in name)


def _is_store_ref(name: str, local: str) -> bool:
    """The store ref, its feeds, and their ``refs/remotes/<remote>/`` copies."""
    if name.startswith("refs/remotes/"):
        remote, _, rest = name[len("refs/remotes/"):].partition("/")
        if not remote or not rest:
            return False
        name = "refs/heads/" + rest
    if name == local:
        return True
    head, _, replica = name.rpartition("/")
    return head + "/" == local + FEEDS + "/" and is_feed_name(replica)


def store_heads(common: Path, branch: str) -> dict[str, str]:
    """Every ref a read folds, name -> commit id: the local store ref (the merged view), the
    feed refs (``<branch>.feeds/<replica>``) and every ``refs/remotes/*/`` copy of both."""
    local = branch_ref(branch)
    short = local.removeprefix("refs/heads/")
    heads = {name: sha for name, sha in _packed_refs(common).items()
             if _is_store_ref(name, local)}
    for name, path in _loose_store_refs(common, local, short):
        sha = read_ref_file(path)
        if sha:
            heads[name] = sha
    return heads


def _loose_store_refs(common: Path, local: str, short: str) -> list[tuple[str, Path]]:
    """(name, path) of the loose ref files ``store_heads`` reads (they may not exist)."""
    out = [(local, common / local)]
    bases = [("refs/heads/", common / "refs" / "heads")]
    remotes = common / "refs" / "remotes"
    try:
        bases += [(f"refs/remotes/{r}/", remotes / r) for r in sorted(os.listdir(remotes))]
    except (FileNotFoundError, NotADirectoryError):
        pass
    for prefix, base in bases:
        if prefix != "refs/heads/":
            out.append((prefix + short, base / short))
        feeds = base / (short + FEEDS)
        try:
            names = sorted(os.listdir(feeds))
        except (FileNotFoundError, NotADirectoryError):
            continue
        out += [(f"{prefix}{short}{FEEDS}/{n}", feeds / n) for n in names if is_feed_name(n)]
    return out


def heads_stamp(common: Path, branch: str) -> tuple:
    """A cheap fingerprint of everything ``store_heads`` reads (stat calls only).

    Waiters poll this; when it changes they read the heads themselves. A ref file is
    replaced by a rename, so its inode changes with every update."""
    local = branch_ref(branch)
    short = local.removeprefix("refs/heads/")
    paths = [common / "packed-refs", common / "refs" / "remotes"]
    paths += [path for _, path in _loose_store_refs(common, local, short)]
    stamp = []
    for path in paths:
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def read_ref_file(path: Path | str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    try:
        data = os.read(fd, 128)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    sha = data.strip()
    return sha.decode("ascii", "replace") if len(sha) == 40 else None


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

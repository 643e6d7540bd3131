"""``bd reserve/release/renew/reservations`` and ``bd guard install/uninstall/check``.

``bd guard check`` (the pre-commit hook's command) runs without typer: ``cli.guardcheck``."""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from beadsmail import guard, reservations
from beadsmail.cli.common import Identity, Json, identity, workspace
from beadsmail.cli.guardcheck import run_check
from beadsmail.cli.output import emit, emit_written

Paths = Annotated[list[str] | None, typer.Argument(
    help="Paths or globs (git wildmatch: *, ?, [..], **), relative to where you are.")]
Ttl = Annotated[str | None, typer.Option(
    "--ttl", help="How long: 90s, 15m, 2h, 7d (default reservations.ttl, 2h).")]


def _base(ws) -> str:
    """The caller's directory relative to the worktree root ('' at the top)."""
    if ws.loc.worktree is None:
        return ""
    try:
        rel = Path(os.getcwd()).resolve().relative_to(ws.loc.worktree.resolve())
    except ValueError:
        return ""
    return "" if str(rel) == "." else rel.as_posix()


def _when(stamp: str | None) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


def render_list(leases: list[dict]) -> str:
    if not leases:
        return "No reservations."
    lines = []
    for r in leases:
        lost = f"  LOST to {r['lost_to']}" if r["state"] == "lost" else ""
        why = f"  ({r['reason']})" if r["reason"] else ""
        lines.append(f"{r['id']}  {r['holder']:<14} {r['mode']:<9} {r['pattern']}  "
                     f"until {_when(r['until'])}{why}{lost}")
    return "\n".join(lines)


def _render_reserved(d: dict) -> str:
    lines = [f"reserved {r['pattern']} ({r['mode']}, until {_when(r['until'])}) [{r['id']}]"
             for r in d["reserved"]]
    lines += [f"took over {t['holder']}'s {t['pattern']} [{t['id']}] (they were told by mail)"
              for t in d["taken_over"]]
    return "\n".join(lines)


def render_guard(d: dict) -> str:
    if "installed" in d:
        verb = "would install" if d["dry_run"] else ("installed" if d["changed"] else
                                                      "already installed")
        return f"{verb} the commit guard: {d['installed']}" + (
            " (runs the hook that was there first)" if d["chained"] else "")
    if "removed" in d:
        if not d["removed"]:
            return f"no beadsmail commit guard in {d['hooks_dir']}"
        return "removed the commit guard" + (" and restored the previous hook"
                                             if d["restored"] else "")
    return "\n".join(f"warning: {b['message']}" for b in d["blocked"]) or \
        f"ok: {d['checked']} staged path(s), none reserved by others"


def register(app: typer.Typer) -> None:

    @app.command()
    def reserve(
        paths: Annotated[list[str], typer.Argument(
            help="Paths or globs (git wildmatch: *, ?, [..], **), relative to where you are.")],
        exclusive: Annotated[bool, typer.Option(
            "--exclusive/--shared", help="Exclusive (default) blocks others; shared does not.")
        ] = True,
        ttl: Ttl = None,
        reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why (shown to others).")
                          ] = None,
        task: Annotated[str | None, typer.Option("--task", help="The task this is for.")] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="Take over others' overlapping exclusive reservations (they are "
            "told by mail).")] = False,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Reserve files for your work (advisory; the commit guard enforces it).  Example: bd reserve 'src/parser/**' --ttl 2h -m "refactor" """
        ws = workspace()
        result = reservations.reserve(
            ws, identity(ws, identity_), paths, mode="exclusive" if exclusive else "shared",
            ttl=ttl, reason=reason, task=task, force=force, base=_base(ws))
        emit_written(result, json_, _render_reserved)

    @app.command()
    def release(
        paths: Paths = None,
        all_: Annotated[bool, typer.Option("--all", help="Every reservation of mine.")] = False,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Release my reservations (the patterns, or those covering the paths).  Example: bd release --all"""
        ws = workspace()
        result = reservations.release(ws, identity(ws, identity_), paths or [], all_=all_,
                                      base=_base(ws))
        emit_written(result, json_, lambda d: "\n".join(
            f"released {r['pattern']} [{r['id']}]" for r in d["released"]) or "nothing to release")

    @app.command()
    def renew(
        paths: Paths = None, ttl: Ttl = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Extend my open reservations (all, or those named).  Example: bd renew --ttl 1h"""
        ws = workspace()
        result = reservations.renew(ws, identity(ws, identity_), paths or [], ttl=ttl,
                                    base=_base(ws))
        emit_written(result, json_, lambda d: "\n".join(
            f"renewed {r['pattern']} until {_when(r['until'])}" for r in d["renewed"]))

    @app.command(name="reservations")
    def listing(
        mine: Annotated[bool, typer.Option("--mine", help="Only mine.")] = False,
        path: Annotated[str | None, typer.Option(
            "--path", help="Only those covering this path or glob.")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Open reservations: who holds what, until when, and races lost across clones.  Example: bd reservations --path src/x.py"""
        ws = workspace()
        me = identity(ws, identity_)
        reservations.notify_lost(ws, ws.replica)
        emit(reservations.listing(ws, me, mine=mine, path=path, base=_base(ws)), json_,
             render_list)

    guard_app = typer.Typer(help="The git pre-commit hook that honours reservations.",
                            no_args_is_help=True)

    @guard_app.command()
    def install(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what it would do.")
                           ] = False,
        json_: Json = False,
    ) -> None:
        """Install the pre-commit guard (every worktree; keeps and runs a hook already there).  Example: bd guard install"""
        ws = workspace()
        if ws.loc.worktree is None:
            raise typer.BadParameter("run it in a worktree of the repository")
        import shutil

        here = Path(sys.executable).with_name("bd")
        bd = str(here) if here.is_file() else (shutil.which("bd") or "bd")
        emit(guard.install(ws.loc.worktree, bd, dry_run), json_, render_guard)

    @guard_app.command()
    def uninstall(json_: Json = False) -> None:
        """Remove the guard and restore the hook it chained.  Example: bd guard uninstall"""
        ws = workspace()
        emit(guard.uninstall(ws.loc.worktree or ws.loc.common), json_, render_guard)

    @guard_app.command()
    def check(identity_: Identity = None, json_: Json = False) -> None:
        """Check the staged paths (what the hook runs; BEADS_GUARD=warn|off).  Example: bd guard check"""
        run_check(json_, identity_)

    app.add_typer(guard_app, name="guard")

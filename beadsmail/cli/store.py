"""Store commands: init, where, doctor, index rebuild, show."""

from __future__ import annotations

from typing import Annotated

import typer

from beadsmail import maintenance
from beadsmail.cli.common import Json, workspace
from beadsmail.cli.output import emit

index_app = typer.Typer(help="The SQLite index (a cache of the store).", no_args_is_help=True)


def _render_where(d: dict) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in d["records"].items()) or "none"
    lines = [f"repository:  {d['repository']}", f"common dir:  {d['common_dir']}",
             f"store ref:   {d['ref']} @ {d['head'] or '(none yet)'}"]
    lines += [f"  remote:    {k} @ {v}" for k, v in d["remote_heads"].items()]
    lines += [f"replica:     {d['replica'] or '(none yet)'}", f"index:       {d['index']}",
              f"records:     {counts}"]
    if d["bad_lines"]:
        lines.append(f"bad lines:   {d['bad_lines']} (run 'bd doctor')")
    return "\n".join(lines)


def _render_repair(r: dict) -> str:
    if "replicas" in r:
        return f"not fixed here: lines of replica(s) {', '.join(r['replicas'])}: {r['detail']}"
    where = r.get("path") or r.get("id")
    return f"fixed {where}{':' + str(r['line']) if r.get('line') else ''}: {r['action']}"


def _where(r: dict) -> str:
    at = f" in {r['ref']} @ {r['commit'][:12]}" if r.get("ref") and r.get("commit") else ""
    return f".beads/log/{r['path']}:{r['line']}{at}"


def _render_copies(c: dict) -> str:
    held = f"      record {c['id']} ({', '.join(c['flags']) or 'a misplaced copy'}): held from " \
           f".beads/log/{c['path']}:{c['line']} (replica {c['replica']})"
    return "\n".join([held] + [
        f"        other copy: .beads/log/{o['path']}:{o['line']} (replica {o['replica']}, "
        f"{'other content' if o['differs'] else 'same content'})" for o in c["copies"]])


def _render_doctor(d: dict) -> str:
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'}  {c['check']}: {c['detail']}" for c in d["checks"]]
    lines += [f"      {b['path']}:{b['line']}: {b['error']}" for b in d["bad_lines"]]
    lines += [f"      refused: {_where(r)}: {r['error']}" for r in d.get("rejected", [])]
    lines += [_render_copies(c) for c in d.get("copies", [])]
    lines += [_render_repair(r) for r in d.get("repairs", [])]
    lines.append("store is healthy" if d["ok"] else "problems found (data is never deleted)")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        path: Annotated[str | None, typer.Argument(help="Directory (default: here).")] = None,
        branch: Annotated[str | None, typer.Option(help="Store branch name.")] = None,
        json_: Json = False,
    ) -> None:
        """Create the store (and a git repository first, if needed).  Example: bd init"""
        result = maintenance.init(path, branch)
        emit(result, json_, lambda d: (
            ("created git repository\n" if d["created_repository"] else "")
            + (f"created store {d['ref']} in {d['repository']}" if d["created_store"]
               else f"store {d['ref']} already exists in {d['repository']}")
            + (f"\nwrote {d['config']}" if d["wrote_config"] else "")))

    @app.command()
    def where(json_: Json = False) -> None:
        """Show the repository, store ref, replica, index and record counts.  Example: bd where --json"""
        emit(maintenance.where(workspace()), json_, _render_where)

    @app.command()
    def doctor(
        fix: Annotated[bool, typer.Option("--fix", help=(
            "Repair without deleting data: clear stale locks, move unreadable lines to "
            ".beads/quarantine/, restore records edited by hand, rebuild the index."))] = False,
        json_: Json = False,
    ) -> None:
        """Check locks, objects, every record and the index.  Example: bd doctor --fix"""
        result = maintenance.doctor(workspace(), fix)
        emit(result, json_, _render_doctor)
        if not result["ok"]:
            raise typer.Exit(1)

    @index_app.command("rebuild")
    def index_rebuild(json_: Json = False) -> None:
        """Build the index anew from the whole store; commands keep using the old one until
        the new one is complete.  Example: bd index rebuild"""
        result = maintenance.rebuild(workspace())
        emit(result, json_, lambda d: f"rebuilt {d['index']}: "
             + (", ".join(f"{k} {v}" for k, v in d["records"].items()) or "no records"))

    app.add_typer(index_app, name="index")

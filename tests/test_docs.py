"""The documentation stays true to the commands."""

from __future__ import annotations

from pathlib import Path

import typer.main

from beadsmail.cli import build_app
from beadsmail.cli.reference import _walk, render

ROOT = Path(__file__).parent.parent


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text("utf-8") == render(), "run 'make docs'"


def test_every_command_has_json_and_an_example() -> None:
    root = typer.main.get_command(build_app())
    missing = []
    for path, cmd in _walk(root, ["bd"]):
        if getattr(cmd, "commands", None) is not None:
            continue  # a group
        options = {opt for param in cmd.params for opt in getattr(param, "opts", ())}
        if "--json" not in options and path[1:] not in (["serve"], ["mcp"]):  # servers
            missing.append(f"{' '.join(path)}: no --json")
        if "Example:" not in (cmd.help or ""):
            missing.append(f"{' '.join(path)}: no example in --help")
    assert not missing, missing


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block

"""The layering DESIGN.md promises, checked on the source: cli -> domain -> store/index."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).parent.parent / "beadsmail"


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        yield ".".join(rel.parts), path, ast.parse(path.read_text("utf-8"))


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_dulwich_only_in_the_store() -> None:
    bad = [name for name, _, tree in modules()
           if any(m.split(".")[0] == "dulwich" for m in imported(tree))
           and not name.startswith("beadsmail.store")]
    assert not bad, bad


def test_sql_only_in_the_index() -> None:
    bad = []
    for name, _, tree in modules():
        if name.startswith("beadsmail.index"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany",
                                                                 "executescript", "connect"):
                if isinstance(node.value, ast.Name) and node.value.id in ("sqlite3",):
                    bad.append(f"{name}: sqlite3.{node.attr}")
                elif node.attr.startswith("execute"):
                    bad.append(f"{name}: .{node.attr}(")
    assert not bad, bad


def test_typer_only_in_the_cli_and_nothing_imports_the_cli() -> None:
    for name, _, tree in modules():
        mods = imported(tree)
        if not name.startswith("beadsmail.cli") and name != "beadsmail.__main__":
            assert "typer" not in {m.split(".")[0] for m in mods}, name
            assert not any(m.startswith("beadsmail.cli") for m in mods), name


def test_the_environment_is_read_only_by_the_cli() -> None:
    """Domain modules take values; they may pass the environment on to child processes."""
    bad = []
    for name, _, tree in modules():
        if name.startswith("beadsmail.cli"):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "getenv")
                    and ast.unparse(node.func.value) in ("os.environ", "os")):
                bad.append(f"{name}: {ast.unparse(node)}")
    assert not bad, bad


def test_modules_stay_small() -> None:
    big = {name: len(path.read_text().splitlines()) for name, path, _ in modules()
           if not name.endswith("_validators")}
    assert all(n <= 450 for n in big.values()), {k: v for k, v in big.items() if v > 450}

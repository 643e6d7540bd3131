"""Editing other programs' configuration files without disturbing what is already there.

An ``Edit`` is one file's bytes before and after (``None``: the file is absent).
JSON files are parsed, changed in place (Python keeps key order, so the user's
entries stay where they were) and written back in the style they were found in
(indent, trailing newline), which for the files the agents themselves write
(two-space ``JSON.stringify``) gives back the very same bytes once our entries
are removed again. TOML files go through tomlkit, which keeps comments and
layout. Markdown gets a marked block. Removing touches only entries equal to
what ``bd setup`` writes; a file left empty by a removal is deleted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from beadsmail.errors import InvalidInput

BEGIN = "<!-- beadsmail:begin (written by bd setup; bd setup agents-md --remove takes it out) -->"
END = "<!-- beadsmail:end -->"


@dataclass
class Edit:
    path: Path
    before: bytes | None
    after: bytes | None

    @property
    def action(self) -> str:
        if self.before == self.after:
            return "unchanged"
        return "create" if self.before is None else "delete" if self.after is None else "update"

    def diff(self) -> str:
        import difflib

        old = (self.before or b"").decode("utf-8").splitlines(keepends=True)
        new = (self.after or b"").decode("utf-8").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, f"a/{self.path.name}", f"b/{self.path.name}"))

    def apply(self) -> None:
        if self.action == "unchanged":
            return
        if self.after is None:
            self.path.unlink()
            for parent in (self.path.parent,):
                if parent.name.startswith(".") and not any(parent.iterdir()):
                    parent.rmdir()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".beadsmail-tmp")
        tmp.write_bytes(self.after)
        if self.before is not None:
            os.chmod(tmp, self.path.stat().st_mode & 0o7777)
        os.replace(tmp, self.path)


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# -- JSON ------------------------------------------------------------------------------

def load_json(path: Path, raw: bytes | None) -> tuple[dict, tuple[int | None, bool]]:
    if raw is None or not raw.strip():
        return {}, (2, True)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path} is not valid JSON ({exc}); fix it by hand first, then run "
                           "bd setup again") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} does not hold a JSON object; fix it by hand first")
    text = raw.decode("utf-8")
    indent = None
    for line in text.splitlines()[1:2]:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped) if stripped != line else None
    return data, (indent if "\n" in text.strip() else None, text.endswith("\n"))


def dump_json(data: dict, style: tuple[int | None, bool]) -> bytes | None:
    if not data:
        return None
    indent, newline = style
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return (text + ("\n" if newline else "")).encode("utf-8")


def put_server(data: dict, key: str, name: str, entry: dict, path: Path) -> None:
    servers = data.setdefault(key, {})
    if not isinstance(servers, dict):
        raise InvalidInput(f"{path}: '{key}' is not an object; fix it by hand first")
    if name in servers and servers[name] != entry:
        raise InvalidInput(f"{path} already has an MCP server named '{name}' that bd setup did "
                           "not write; rename or remove it, or run bd setup --remove first")
    servers[name] = entry


def drop_server(data: dict, key: str, name: str, entry: dict) -> None:
    servers = data.get(key)
    if isinstance(servers, dict) and servers.get(name) == entry:
        del servers[name]
        if not servers:
            del data[key]


def put_hook(data: dict, event: str, group: dict, path: Path) -> None:
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict) or not isinstance(hooks.setdefault(event, []), list):
        raise InvalidInput(f"{path}: 'hooks' is not in the expected shape; fix it by hand first")
    commands = {h.get("command") for g in hooks[event] if isinstance(g, dict)
                for h in g.get("hooks", []) if isinstance(h, dict)}
    if group["hooks"][0]["command"] not in commands:
        hooks[event].append(group)


def drop_hook(data: dict, event: str, command: str) -> None:
    hooks = data.get("hooks")
    if not isinstance(hooks, dict) or not isinstance(hooks.get(event), list):
        return
    for group in list(hooks[event]):
        if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
            continue
        kept = [h for h in group["hooks"] if not (isinstance(h, dict)
                                                  and h.get("command") == command)]
        if len(kept) != len(group["hooks"]):
            if kept:
                group["hooks"] = kept
            else:
                hooks[event].remove(group)
    if not hooks[event]:
        del hooks[event]
    if not hooks:
        del data["hooks"]


# -- TOML ------------------------------------------------------------------------------

def toml_edit(path: Path, raw: bytes | None, table: tuple[str, str], entry: dict | None,
              remove: bool) -> bytes | None:
    """Add (or remove) ``[table[0].table[1]]`` holding ``entry``, keeping the rest as it is."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc = tomlkit.parse((raw or b"").decode("utf-8"))
    except (ParseError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid TOML ({exc}); fix it by hand first") from None
    outer, name = table
    servers = doc.get(outer)
    current = servers.get(name) if servers is not None else None
    plain = current.unwrap() if current is not None else None
    if remove:
        if plain == entry:
            del servers[name]
            if not servers:
                del doc[outer]
    elif current is None:
        if servers is None:
            servers = tomlkit.table(is_super_table=True)
            doc.append(outer, servers)
        servers.append(name, _toml_table(entry))
    elif plain != entry:
        raise InvalidInput(f"{path} already has [{outer}.{name}] that bd setup did not write; "
                           "rename or remove it, or run bd setup --remove first")
    text = tomlkit.dumps(doc)
    return text.encode("utf-8") if text.strip() else None


def _toml_table(entry: dict):
    import tomlkit

    table = tomlkit.table()
    for key, value in entry.items():
        if isinstance(value, dict):
            inner = tomlkit.inline_table()
            inner.update(value)
            table.add(key, inner)
        else:
            table.add(key, value)
    return table


# -- Markdown --------------------------------------------------------------------------

def block_edit(raw: bytes | None, block: str, remove: bool) -> bytes | None:
    """Append (or take out) the marked beadsmail block; the rest of the text is untouched."""
    text = (raw or b"").decode("utf-8")
    start = text.find(BEGIN)
    if start >= 0:
        end = text.find(END, start)
        end = len(text) if end < 0 else end + len(END) + (1 if text[end + len(END):][:1] == "\n"
                                                           else 0)
        lead = 1 if start > 0 and text[:start].endswith("\n\n") else 0
        text = text[:start - lead] + text[end:]
    if not remove:
        sep = "" if not text else "\n" if text.endswith("\n") else "\n\n"
        text += sep + f"{BEGIN}\n{block.strip()}\n{END}\n"
    return text.encode("utf-8") if text else None


# -- what bd setup wrote, to undo it exactly ----------------------------------------------

class Memory:
    """The bytes of each file before and after ``bd setup`` changed it, kept beside the
    index (never committed). ``--remove`` on a file still holding exactly what was
    written puts the earlier bytes back, whatever the file's formatting; a file edited
    since is undone entry by entry instead."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _file(self, path: Path) -> Path:
        import hashlib

        return self.folder / (hashlib.sha1(str(path.resolve()).encode()).hexdigest() + ".json")

    def keep(self, edit: Edit) -> None:
        import base64

        if edit.action == "unchanged":
            return
        record = {"path": str(edit.path), **{k: None if v is None else
                                              base64.b64encode(v).decode()
                                              for k, v in (("before", edit.before),
                                                           ("after", edit.after))}}
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file(edit.path).write_text(json.dumps(record))

    def undo(self, edit: Edit) -> Edit:
        """``edit`` (a removal), or the exact earlier bytes when the file is as written."""
        import base64

        try:
            record = json.loads(self._file(edit.path).read_text())
        except (OSError, ValueError):
            return edit
        after = record.get("after")
        if after is None or edit.before is None or base64.b64decode(after) != edit.before:
            return edit
        before = record.get("before")
        return Edit(edit.path, edit.before, None if before is None else base64.b64decode(before))

    def forget(self, edit: Edit) -> None:
        self._file(edit.path).unlink(missing_ok=True)

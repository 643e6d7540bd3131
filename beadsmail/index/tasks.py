"""Placeholder fold for tasks (filled by its domain)."""

from __future__ import annotations

import sqlite3

DDL = ""
TABLES: tuple[str, ...] = ()


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    return None

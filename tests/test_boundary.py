"""The trust boundary (``beadsmail/boundary.py``): bounds, values, and that nothing bypasses it.

The hostile-remote suite (real pushes and fetches of hostile stores) is
``tests/test_hostile.py``; here each bound is tried on its own, and the source is
checked so that no module reads git trees or blobs for records around the boundary.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beadsmail import boundary, records
from beadsmail.boundary import Limits
from beadsmail.errors import InvalidInput

PKG = Path(__file__).parent.parent / "beadsmail"
LIMITS = Limits()


def record(**extra) -> dict:
    base = records.make("message", "alice", 1, "abcdefghijkl", "bd-", **{
        "from": "alice", "to": ["bob"], "subject": "s", "body": "b", "priority": 2,
        "type": "request", "thread_id": "bd-0000000000000", "replies_to": None, "ephemeral": False,
        "metadata": {}, "action_requested": "none"})
    base.update(extra)
    return base


def line(**extra) -> bytes:
    return json.dumps(record(**extra)).encode()


def refused(raw: bytes, limits: Limits = LIMITS) -> str:
    result = boundary.parse(raw, limits, records.parse_line)
    assert isinstance(result, str), result
    return result


def test_a_valid_line_passes_with_both_parsers() -> None:
    raw = line(metadata={"n": 2**53 - 1, "m": -(2**53 - 1), "f": 1.5, "deep": [[[1]]]})
    for parse in (records.parse_line, records.fast_parser()):
        assert boundary.parse(raw, LIMITS, parse)["metadata"]["n"] == 2**53 - 1


@pytest.mark.parametrize(("raw", "words"), [
    (line(clock=2**63), "out of range"),
    (line(clock=2**53), "out of range"),
    (line(metadata={"x": [-(2**53)]}), "out of range"),
    (line(metadata={"x": 10**400}), "out of range"),
    (line(subject="\ud800"), "not UTF-8"),  # json.dumps escapes it; a lone surrogate
    (line(metadata={"\udfff": 1}), "not UTF-8"),
    (line()[:-1] + b',"x":1e999}', "not finite"),
    (line()[:-1] + b',"x":NaN}', "not finite"),
    (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nested deeper"),
    (b"[" * 100_000, "nested deeper"),
    (b'{"subject":"\xff\xfe"}', "not UTF-8"),
])
def test_each_hostile_line_is_refused_with_a_reason_never_an_exception(raw: bytes,
                                                                       words: str) -> None:
    for parse in (records.parse_line, records.fast_parser()):
        why = boundary.parse(raw, LIMITS, parse)
        assert isinstance(why, str), why
        assert words in why or "invalid" in why or "not JSON" in why, why


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = line(body="[" * 5000 + "{" * 5000)
    assert isinstance(boundary.parse(raw, LIMITS, records.parse_line), dict)
    assert boundary.too_deep(b'{"a":[[[[1]]]]}', 4) and not boundary.too_deep(b'{"a":[[[1]]]}', 4)
    assert not boundary.too_deep(b'{"a":"\\"[[[[[["}', 2)


def test_each_bound_is_configurable_and_checked() -> None:
    assert "line_bytes" in refused(line(body="x" * 200), Limits(line_bytes=100))
    assert "depth" in refused(line(metadata={"a": {"b": {"c": 1}}}), Limits(depth=2))
    assert Limits.of({"boundary": {"depth": 5}}) == Limits(depth=5) != Limits()
    for bad in (0, -1, "10", True, 1.5):
        with pytest.raises(InvalidInput, match="boundary.depth"):
            Limits.of({"boundary": {"depth": bad}})
    with pytest.raises(InvalidInput):
        Limits.of({"boundary": ["x"]})


def test_segment_lines_report_each_refusal_with_its_line_and_keep_the_rest() -> None:
    good = line()
    content = good + b"\n" + b"[" * 50 + b"\n" + b"\n" + line(clock=2**62) + b"\ntorn"
    items, rejected, consumed, last = boundary.lines(content, 0, 0, LIMITS, records.parse_line,
                                                     "r/seg")
    assert [n for _, _, n in items] == [1]
    assert [(r.path, r.line) for r in rejected] == [("r/seg", 2), ("r/seg", 4), ("r/seg", 5)]
    assert consumed == len(content) - len(b"torn") and last == 4


@pytest.mark.parametrize(("name", "mode", "tree", "words"), [
    (b"\xff\xfe", 0o040000, True, "not UTF-8"),
    (b"abcdefghijkl", 0o160000, True, "gitlink"),
    (b"abcdefghijkl", 0o120000, True, "symbolic link"),
    (b"abcdefghijkl", 0o100644, True, "a file where a directory"),
    (b"ABCDEFGHIJKL", 0o040000, True, "not a replica"),
    (b"2026-01-01-000.jsonl", 0o040000, False, "a directory where a file"),
    (b"2026-01-01-000.jsonl", 0o160000, False, "gitlink"),
    (b"2026-01-01-x.jsonl", 0o100644, False, "not a segment name"),
    (b"notes.txt", 0o100644, False, "not a segment name"),
])
def test_tree_entries_of_the_wrong_shape_are_named(name, mode, tree, words) -> None:
    why = boundary._entry_problem(name, mode, tree)
    assert why is not None and words in why, why


def test_well_formed_entries_pass() -> None:
    assert boundary._entry_problem(b"abcdefghijkl", 0o040000, True) is None
    assert boundary._entry_problem(b"2026-01-01-000.jsonl", 0o100644, False) is None
    assert boundary._entry_problem(b"2026-01-01-1234.jsonl", 0o100755, False) is None


# Lines nobody listed: random JSON values and bytes, spliced into a valid record.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=30)
hostile_lines = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda k, v: line()[:-1] + b',' + json.dumps(k).encode() + b":"
              + json.dumps(v).encode() + b"}", st.text(max_size=5), json_values),
    st.builds(lambda n: b'{"a":' * n + b"0" + b"}" * n, st.integers(0, 3000)),
    st.builds(lambda n: line(clock=n), st.integers(min_value=-(2**70), max_value=2**70)),
)


@settings(max_examples=300, deadline=None)
@given(hostile_lines)
def test_any_line_is_a_record_within_every_bound_or_a_reason(raw: bytes) -> None:
    for parse in (records.parse_line, records.fast_parser()):
        result = boundary.parse(raw, LIMITS, parse)
        if isinstance(result, str):
            continue
        assert boundary._bad_value(result) is None
        text = records.dumps(result).decode("utf-8")  # storable and showable as it is
        assert len(text) <= LIMITS.line_bytes * 2


# -- nothing bypasses the boundary ---------------------------------------------------------

RAW_READS = {"blob", "blob_bytes", "entries", "tree", "object_size", "changed_segments",
             "log_tree_entry"}
ALLOWED = {"beadsmail.boundary", "beadsmail.store.writer", "beadsmail.store.objects",
           "beadsmail.store.feeds"}  # (moves subtree ids of the own view into the feed tree)


def test_no_module_reads_git_trees_or_blobs_around_the_boundary() -> None:
    """Only the boundary (and the store's own plumbing beneath it) asks git for trees,
    blobs or object sizes; everything else gets segments and records from it."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        name = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        if name in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in RAW_READS and "writer" in ast.unparse(node.func.value):
                bad.append(f"{name}: {ast.unparse(node)[:60]}")
    assert not bad, bad

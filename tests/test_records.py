"""Records: schemas, generated validators, canonical form."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from beadsmail import records, schemas
from beadsmail.errors import InvalidInput
from beadsmail.schemas import generate
from beadsmail.schemas._validators import ACCEPT

EXAMPLE = Path(__file__).parent.parent / ".beads-example"


def test_generated_validators_match_schema_files() -> None:
    assert generate.target().read_text("utf-8") == generate.render(), \
        "run 'make schemas' after editing a schema"


def test_every_kind_has_a_valid_schema() -> None:
    for kind in schemas.KINDS:
        jsonschema.Draft202012Validator.check_schema(schemas.load(kind))


def test_example_records_are_valid_with_both_validators() -> None:
    lines = [line for f in sorted((EXAMPLE / "log").rglob("*.jsonl"))
             for line in f.read_text("utf-8").splitlines() if line]
    assert len(lines) >= len(schemas.KINDS)
    kinds = set()
    for line in lines:
        record = json.loads(line)
        jsonschema.validate(record, schemas.load(record["kind"]))
        records.validate(record)
        assert records.dumps(record).decode() == line, "example lines are canonical"
        kinds.add(record["kind"])
    assert kinds == set(schemas.KINDS)


def test_invalid_records_rejected() -> None:
    good = json.loads((sorted((EXAMPLE / "log").rglob("*.jsonl"))[0]).read_text().splitlines()[0])
    records.validate(good)
    for mutate in ({"clock": 0}, {"kind": "nope"}, {"id": "BD-1"}, {"extra": 1}, {"actor": "a/b"}):
        with pytest.raises(InvalidInput):
            records.validate({**good, **mutate})


def test_ids_are_random_and_long() -> None:
    ids = {records.new_id() for _ in range(10000)}
    assert len(ids) == 10000
    assert all(records.ID_RE.match(i) for i in ids)


def test_parse_line_reports_reason() -> None:
    for raw, word in ((b"\xff\xfe", "UTF-8"), (b"<<<<<<< HEAD", "JSON"), (b"[1]", "object")):
        with pytest.raises(InvalidInput, match=word):
            records.parse_line(raw)


def test_generated_validators_agree_with_jsonschema() -> None:
    """Mutations of valid example records: both validators accept or both reject."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    examples = [json.loads(line) for f in sorted((EXAMPLE / "log").rglob("*.jsonl"))
                for line in f.read_text("utf-8").splitlines() if line]
    values = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.text(max_size=20),
                       st.sampled_from(["bd-0a1b2c3d4e5f6", "#review-queue", "@core", "*", "a/b",
                                        "2026-11-23T09:00:00Z", "bd-abc\n"]),
                       st.lists(st.sampled_from(["bob", "#x", "", "@g"]), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(examples), st.data())
    def check(example, data) -> None:
        record = dict(example)
        key = data.draw(st.sampled_from(sorted(record) + ["unknown_field"]))
        if data.draw(st.booleans()):
            record.pop(key, None)
        else:
            record[key] = data.draw(values)
        schema_ok = not list(jsonschema.Draft202012Validator(
            schemas.load(example["kind"])).iter_errors(record))
        try:
            records.validate(record)
            ours_ok = True
        except InvalidInput:
            ours_ok = False
        if isinstance(record.get(key), str) and record[key].endswith("\n"):
            # ECMA-262 '$' is the end of input; Python's re (used by jsonschema) also
            # matches before a final newline. Ours follows ECMA: stricter, never looser.
            assert not ours_ok or schema_ok
            return
        assert ours_ok == schema_ok, (key, record.get(key))

    check()


def test_accept_agrees_with_validate() -> None:
    """``accept_<kind>`` (the rebuild's fast check) on every single-field change of every
    example: True exactly when the record is valid, except that it refuses a float in a
    free-form field (which json, not orjson, must read)."""
    examples = [json.loads(line) for f in sorted((EXAMPLE / "log").rglob("*.jsonl"))
                for line in f.read_text("utf-8").splitlines() if line]
    values = [None, True, False, 0, 1, 2, -1, 4, 5, 9, 10**20, 1.5, "", "x", "a/b", "bob", "*",
              "#review-queue", "@core", "bd-0a1b2c3d4e5f6", "bd-abc\n", "low", "todo", "read",
              "2026-11-23T09:00:00Z", "2026-11-23T09:00:00.1234567Z", [], ["bob"], ["bob", "bob"],
              ["#x", 3], {}, {"a": 1}, {"a": 1.5}, {"a": [{"b": 2.5}]}, "x" * 501]

    def free_float(value) -> bool:
        return isinstance(value, float) or isinstance(value, (dict, list)) and any(
            free_float(v) for v in (value.values() if isinstance(value, dict) else value))

    checked = 0
    for example in examples:
        accept = ACCEPT[example["kind"]]
        variants = [{k: v for k, v in example.items() if k != key} for key in example]
        variants += [{**example, key: value} for key in [*example, "unknown"] for value in values]
        variants += [{**example, "metadata": value} for value in values if
                     example["kind"] == "message"]
        for record in variants:
            try:
                records.validate(record)
                valid = True
            except InvalidInput:
                valid = False
            try:
                accepted = accept(record)
            except (KeyError, TypeError):
                accepted = False
            floats = free_float(record.get("metadata")) or free_float(record.get("context"))
            assert accepted == (valid and not floats), (record, valid)
            checked += 1
    assert checked > 4000


def test_fast_parser_agrees_with_parse_line() -> None:
    """Mangled lines: the rebuild's parser returns the same record or the same error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    lines = [line.encode() for f in sorted((EXAMPLE / "log").rglob("*.jsonl"))
             for line in f.read_text("utf-8").splitlines() if line]
    fast = records.fast_parser()
    for line in lines:
        record = fast(line)
        assert ACCEPT[record["kind"]](record), "valid example records take the fast path"
    # orjson and json differ on these (NaN, lone surrogates, integers past 64 bits)
    tokens = [b"NaN", b"-Infinity", b"1e400", b"18446744073709551616", b"-9223372036854775809",
              b"123456789012345678901234567890", b"1.5", b'"\\ud800"', b'"\\u00e9"', b"\xff",
              b"\xef\xbb\xbf", b"\xed\xa0\x80", b" ", b"\t", b"\r", b",", b"{}", b"[]", b'"a":1,',
              b"true", b"null", b'"kind":"message",', b"\x00", b"0"]

    def outcome(parse, line: bytes):
        try:
            return parse(line)
        except InvalidInput as exc:
            return exc.message

    @settings(max_examples=600, deadline=None)
    @given(st.sampled_from(lines), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3),
                                                       st.sampled_from(tokens)), max_size=3))
    def check(line, edits) -> None:
        for at, cut, token in edits:
            at %= len(line) + 1
            line = line[:at] + token + line[at + cut:]
        assert outcome(fast, line) == outcome(records.parse_line, line), line

    check()
    message = next(line for line in lines if b'"metadata":{}' in line)
    big = fast(message.replace(b'"metadata":{}', b'"metadata":{"n":18446744073709551616}'))
    assert type(big["metadata"]["n"]) is int, "json's exact integer, not orjson's float"

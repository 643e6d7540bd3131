"""Records: schemas, generated validators, canonical form."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from beadsmail import records, schemas
from beadsmail.errors import InvalidInput
from beadsmail.schemas import generate

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

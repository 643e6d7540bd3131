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

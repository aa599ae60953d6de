"""The topic reference: README table, JSON Schemas and the code's payloads cannot drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, ValidationError

from device.pause import parse_command
from device.publish.base import STATUS_KEYS, status_payload
from device.publish.events import LABEL_EVENT_KEYS, LabelEvent
from device.publish.reference import SCHEMAS_DIR, TOPICS, markdown_table, schema, spec_for
from device.publish.topics import OFFLINE, ONLINE, label_payload

README = Path(__file__).resolve().parents[2] / "README.md"


def validate(name: str, payload: bytes) -> None:
    """A payload as a subscriber would check it: JSON, or the text of a plain-text topic."""
    text = payload.decode()
    document = json.loads(text) if text.startswith("{") else text
    Draft202012Validator(schema(name)).validate(document)


def test_readme_table_is_the_reference() -> None:
    assert markdown_table() in README.read_text()


def test_every_schema_file_is_valid_and_named_by_a_topic() -> None:
    files = sorted(p.name for p in SCHEMAS_DIR.glob("*.schema.json"))
    assert files == sorted(spec.schema for spec in TOPICS)
    for name in files:
        Draft202012Validator.check_schema(schema(name))


def test_schemas_list_exactly_what_the_code_allows() -> None:
    label = schema("label_event.schema.json")
    assert set(label["properties"]) == set(label["required"]) == LABEL_EVENT_KEYS
    status = schema("status.schema.json")
    assert set(status["properties"]) == STATUS_KEYS
    assert label["additionalProperties"] is False and status["additionalProperties"] is False
    assert set(schema("availability.schema.json")["enum"]) == {ONLINE, OFFLINE}


def _example(kind: dict) -> str | int:
    """A value of a status property's type (its first allowed value for an enum)."""
    if "enum" in kind:
        return kind["enum"][0]
    return "ok" if kind["type"] == "string" else 1


def test_payloads_the_code_makes_validate() -> None:
    event = LabelEvent("happy", 0.91234, 1765152000.123, "rgb", "fer2013_fused@6235ce4f", "pi-01")
    validate(spec_for("emotion").schema, label_payload(event))
    kinds = schema("status.schema.json")["properties"]
    full = {key: _example(kinds[key]) for key in STATUS_KEYS}
    validate(spec_for("status").schema, status_payload(full))
    for text in (ONLINE, OFFLINE):
        validate(spec_for("availability").schema, text.encode())
    for text in ("on", "off"):
        validate(spec_for("set/monitoring").schema, text.encode())
        assert parse_command(text.encode()) is (text == "off")
    assert parse_command(b"pause") is None


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (
            "label_event.schema.json",
            b'{"label":"happy","confidence":1.5,"ts":1,"source":"rgb","model":"m","device":"d"}',
        ),
        (
            "label_event.schema.json",
            b'{"label":"happy","confidence":0.5,"ts":1,"source":"rgb","model":"m","device":"d","pixels":[1,2]}',
        ),
        ("status.schema.json", b'{"frames_total":"many"}'),
        ("status.schema.json", b'{"temperatures":[36.5]}'),
        ("availability.schema.json", b"maybe"),
    ],
)
def test_schemas_refuse_what_must_not_be_sent(name: str, payload: bytes) -> None:
    with pytest.raises(ValidationError):
        validate(name, payload)

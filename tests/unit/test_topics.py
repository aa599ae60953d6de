"""Topic names and the label payload (device/publish/topics.py, 100 % covered here)."""

from __future__ import annotations

import json

import pytest

from device.publish.events import LABEL_EVENT_KEYS, LabelEvent
from device.publish.topics import (
    OFFLINE,
    ONLINE,
    availability_topic,
    device_topic,
    emotion_topic,
    label_payload,
    status_topic,
)


def make_event(**overrides: object) -> LabelEvent:
    values: dict[str, object] = {
        "label": "happy",
        "confidence": 0.876543,
        "ts": 1764070000.123456,
        "source": "fused",
        "model": "fer2013_hgb@1a2b3c4d",
        "device": "pi-01",
    }
    values.update(overrides)
    return LabelEvent(**values)  # type: ignore[arg-type]


def test_availability_payloads() -> None:
    assert (ONLINE, OFFLINE) == ("online", "offline")


@pytest.mark.parametrize(
    ("builder", "leaf"),
    [(availability_topic, "availability"), (emotion_topic, "emotion"), (status_topic, "status")],
)
def test_device_topics(builder: object, leaf: str) -> None:
    assert callable(builder)
    assert builder("emotion-edge", "pi-01") == f"emotion-edge/pi-01/{leaf}"
    assert builder("site/floor-2", "pi_7") == f"site/floor-2/pi_7/{leaf}"


def test_device_topic_applies_prefix_once() -> None:
    assert device_topic("emotion-edge", "pi-01", "x") == "emotion-edge/pi-01/x"
    topic = emotion_topic("emotion-edge", "pi-01")
    assert topic.count("emotion-edge") == 1 and not topic.startswith("/")


def test_label_payload_has_exactly_the_event_keys() -> None:
    body = json.loads(label_payload(make_event()))
    assert set(body) == LABEL_EVENT_KEYS
    assert body == {
        "label": "happy",
        "confidence": 0.8765,
        "ts": 1764070000.123,
        "source": "fused",
        "model": "fer2013_hgb@1a2b3c4d",
        "device": "pi-01",
    }


def test_label_payload_rounds_and_converts_numbers() -> None:
    body = json.loads(label_payload(make_event(confidence=1, ts=10)))
    assert body["confidence"] == 1.0 and isinstance(body["confidence"], float)
    assert body["ts"] == 10.0 and isinstance(body["ts"], float)
    assert json.loads(label_payload(make_event(confidence=0.99995)))["confidence"] == 1.0


def test_label_payload_is_compact_and_sorted() -> None:
    raw = label_payload(make_event(label="überrascht"))
    assert isinstance(raw, bytes)
    assert b" " not in raw and raw.isascii()  # JSON escapes non-ASCII
    keys = list(json.loads(raw))
    assert keys == sorted(keys)
    assert json.loads(raw)["label"] == "überrascht"

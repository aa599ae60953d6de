"""MemoryPublisher and the status rules it shares with MqttPublisher."""

from __future__ import annotations

import json
import math

import pytest

from device.publish.base import (
    MAX_STATUS_TEXT_CHARS,
    STATUS_KEYS,
    Publisher,
    check_status,
    status_payload,
)
from device.publish.events import LabelEvent
from device.publish.memory import MemoryPublisher


def event(label: str = "happy") -> LabelEvent:
    return LabelEvent(label, 0.7, 1764070000.0, "rgb", "m@1a2b3c4d", "pi-01")


@pytest.fixture
def publisher() -> MemoryPublisher:
    pub = MemoryPublisher(max_events=3)
    pub.start()
    return pub


def test_satisfies_publisher_protocol(publisher: MemoryPublisher) -> None:
    assert isinstance(publisher, Publisher)
    assert publisher.fatal_error is None


def test_keeps_events_in_a_bounded_deque(publisher: MemoryPublisher) -> None:
    for label in ("a", "b", "c", "d"):
        assert publisher.publish(event(label)) is True
    assert [e.label for e in publisher.events] == ["b", "c", "d"]
    assert (publisher.published, publisher.dropped_offline) == (4, 0)


def test_rejects_non_events(publisher: MemoryPublisher) -> None:
    with pytest.raises(TypeError, match="LabelEvent"):
        publisher.publish({"label": "happy"})  # type: ignore[arg-type]
    assert publisher.events == []


def test_drops_and_counts_while_offline(publisher: MemoryPublisher) -> None:
    publisher.set_connected(False)
    assert not publisher.connected
    assert publisher.publish(event()) is False
    publisher.set_connected(True)
    assert publisher.publish(event()) is True
    assert (publisher.published, publisher.dropped_offline, len(publisher.events)) == (1, 1, 1)


def test_not_connected_before_start_or_after_stop() -> None:
    pub = MemoryPublisher()
    assert not pub.connected and pub.publish(event()) is False
    pub.start()
    assert pub.connected
    pub.stop()
    pub.stop()
    assert not pub.connected and pub.dropped_offline == 1


def test_bad_max_events() -> None:
    with pytest.raises(ValueError, match="max_events"):
        MemoryPublisher(max_events=0)


def test_status_is_kept_and_validated(publisher: MemoryPublisher) -> None:
    assert publisher.status is None
    assert publisher.publish_status({"fps": 9.5, "model": "m@1a2b3c4d"}) is True
    assert publisher.status == {"fps": 9.5, "model": "m@1a2b3c4d"}
    with pytest.raises(ValueError, match="landmarks"):
        publisher.publish_status({"landmarks": "1,2,3"})
    publisher.set_connected(False)
    assert publisher.publish_status({"fps": 1.0}) is False


@pytest.mark.parametrize(
    ("status", "match"),
    [
        ({"temperature_c": 36.6}, "not allowed"),
        ({"model": "x" * (MAX_STATUS_TEXT_CHARS + 1)}, "longer than"),
        ({"fps": [1, 2]}, "number or text"),
        ({"fps": True}, "number or text"),
        ({"fps": math.nan}, "finite"),
        ({"uptime_s": math.inf}, "finite"),
    ],
)
def test_check_status_refuses(status: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_status(status)  # type: ignore[arg-type]


def test_status_payload_is_sorted_json() -> None:
    status = {key: 1 for key in STATUS_KEYS}
    raw = status_payload(status)
    assert list(json.loads(raw)) == sorted(STATUS_KEYS)
    assert b" " not in raw

"""An in-memory publisher for ``bench`` and tests: same methods and rules as MqttPublisher."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from device.errors import BrokerAuthError
from device.publish.base import Publisher, StatusValue, check_status
from device.publish.events import LabelEvent

DEFAULT_MAX_EVENTS = 10_000


class _Delivered:
    def is_published(self) -> bool:
        return True


class MemoryPublisher:
    """Keeps the last ``max_events`` label events and the last status in memory.

    ``set_connected(False)`` simulates a broker outage: events are then dropped and counted,
    exactly as MqttPublisher does.
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._lock = threading.Lock()
        self._events: deque[LabelEvent] = deque(maxlen=max_events)
        self._status: dict[str, StatusValue] | None = None
        self._online = True
        self._on_monitoring: Callable[[bool], None] | None = None
        self.summaries: list[bytes] = []
        self._running = False
        self._published = 0
        self._dropped = 0

    def start(self, timeout_s: float = 10.0) -> None:
        self._running = True

    def publish(self, event: LabelEvent) -> bool:
        if not isinstance(event, LabelEvent):
            raise TypeError(f"publish() takes a LabelEvent, not {type(event).__name__}")
        with self._lock:
            if not self.connected:
                self._dropped += 1
                return False
            self._events.append(event)
            self._published += 1
        return True

    def publish_summary(self, payload: bytes) -> _Delivered | None:
        """Keep one summary payload (as delivered at once); None while 'offline'."""
        if not self.connected:
            return None
        with self._lock:
            self.summaries.append(payload)
        return _Delivered()

    @property
    def connections(self) -> int:
        return 1

    def on_monitoring(self, handler: Callable[[bool], None]) -> None:
        self._on_monitoring = handler

    def send_monitoring(self, paused: bool) -> None:
        """What a retained ``set/monitoring`` command would do (tests)."""
        if self._on_monitoring is not None:
            self._on_monitoring(paused)

    def publish_status(self, status: Mapping[str, StatusValue]) -> bool:
        check_status(status)
        self._status = dict(status)
        return self.connected

    def stop(self, timeout_s: float = 5.0) -> None:
        self._running = False

    def set_connected(self, online: bool) -> None:
        """Simulate the broker going away (False) or coming back (True)."""
        self._online = online

    @property
    def events(self) -> list[LabelEvent]:
        """The kept events, oldest first (a copy)."""
        with self._lock:
            return list(self._events)

    @property
    def status(self) -> dict[str, StatusValue] | None:
        """The last status given to publish_status, or None."""
        return None if self._status is None else dict(self._status)

    @property
    def connected(self) -> bool:
        return self._running and self._online

    @property
    def published(self) -> int:
        return self._published

    @property
    def dropped_offline(self) -> int:
        return self._dropped

    @property
    def fatal_error(self) -> BrokerAuthError | None:
        return None


if TYPE_CHECKING:

    def _conforms(publisher: MemoryPublisher) -> Publisher:  # static check only
        return publisher

"""The publisher interface, and the one rule for what a status message may contain.

Both implementations (``MqttPublisher``, ``MemoryPublisher``) satisfy :class:`Publisher`. The
only data type that leaves the device is :class:`~device.publish.events.LabelEvent`; the status
message is diagnostics only: numbers and short strings under an allow-list of keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from device.errors import BrokerAuthError
from device.publish.events import LabelEvent

StatusValue = int | float | str

# Keys a status message may carry: counters, rates and versions. Nothing about a person.
STATUS_KEYS = frozenset(
    {
        "fps",  # main loop rate achieved
        "rgb_fps",
        "thermal_fps",
        "loop_ms",  # time of one loop step
        "frames_total",
        "dropped_frames",
        "faces_found",
        "published",
        "dropped_offline",
        "model",  # model id, e.g. "fer2013_hgb@1a2b3c4d"
        "model_check",  # the bundle's golden-input self-check on this CPU: ok / failed: …
        "summaries_spooled",  # well-being summaries waiting for the broker (device/spool.py)
        "summaries_dropped",  # ... dropped, oldest first, because the spool was full
        "model_kind",  # general, or personal (a model trained for one person)
        "rgb_source",  # the camera's kind and health, e.g. "picamera: ok", "replay: paused"
        "last_error",  # the newest logged error's category (exception class or module)
        "last_error_at",  # ... and when (UNIX time)
        "version",  # software version
        "uptime_s",
        "cpu_temp_c",
        "state",  # e.g. "running"
        "thermal",  # what the thermal channel contributes, in words
        "thermal_frames",
        "thermal_faces",
        "thermal_dropped_frames",
        "thermal_roi_landmarks",  # frames whose ROIs were placed from 54 landmarks
        "thermal_roi_registered",  # ... from RGB landmarks mapped by the registration
        "thermal_roi_detector_box",  # ... from the detector box and the mean shape
        "thermal_no_face",
        "thermal_not_radiometric",  # raw-count frames: no temperatures
    }
)
MAX_STATUS_TEXT_CHARS = 64


def check_status(status: Mapping[str, StatusValue]) -> None:
    """Raise ValueError unless every key is allowed and every value is a number or short text."""
    unknown = sorted(set(status) - STATUS_KEYS)
    if unknown:
        raise ValueError(f"status keys not allowed: {', '.join(unknown)}")
    for key, value in status.items():
        if isinstance(value, str):
            if len(value) > MAX_STATUS_TEXT_CHARS:
                raise ValueError(f"status {key!r} is longer than {MAX_STATUS_TEXT_CHARS} chars")
        elif not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"status {key!r} must be a number or text, not {type(value).__name__}")
        elif not math.isfinite(value):
            raise ValueError(f"status {key!r} must be finite")


def status_payload(status: Mapping[str, StatusValue]) -> bytes:
    """The JSON body of a status message, after :func:`check_status`."""
    check_status(status)
    return json.dumps(dict(status), separators=(",", ":"), sort_keys=True).encode()


@runtime_checkable
class Publisher(Protocol):
    """Where label events go. ``publish`` never blocks on the network and never queues offline."""

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (or begin retrying in the background); raise BrokerAuthError if refused."""

    def publish(self, event: LabelEvent) -> bool:
        """Send one label event; False if it was dropped (offline). TypeError for other types."""

    def publish_status(self, status: Mapping[str, StatusValue]) -> bool:
        """Send retained diagnostics (allow-listed keys only); False if not sent now."""

    def publish_summary(self, payload: bytes) -> Any:
        """Send one spooled summary (QoS 1, retained); a handle with ``is_published()``, or
        None while offline."""

    @property
    def connections(self) -> int:
        """How many times a connection was made (a summary in flight across one is resent)."""

    def on_monitoring(self, handler: Callable[[bool], None]) -> None:
        """Call ``handler(paused)`` when a pause/resume command arrives for this device."""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Announce ``offline`` and disconnect; safe to call twice."""

    @property
    def connected(self) -> bool: ...

    @property
    def published(self) -> int: ...

    @property
    def dropped_offline(self) -> int: ...

    @property
    def fatal_error(self) -> BrokerAuthError | None: ...

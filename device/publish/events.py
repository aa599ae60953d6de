"""The label event: the one and only thing the device publishes about a person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["rgb", "thermal", "fused"]

# Keys of the JSON payload on <prefix>/<device_id>/emotion, exactly these and no others.
LABEL_EVENT_KEYS = frozenset({"label", "confidence", "ts", "source", "model", "device"})


@dataclass(frozen=True, slots=True)
class LabelEvent:
    label: str
    confidence: float  # 0..1, smoothed probability of ``label``
    ts: float  # wall-clock UNIX time in seconds
    source: Source
    model: str  # model id: file stem @ first 8 hex of its sha256
    device: str  # device id

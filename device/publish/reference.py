"""Every topic the device uses, with its QoS, retain flag, direction and the JSON Schema of its
payload (``device/publish/schemas``): the one reference the README's table is checked against.

Pure: no paho, no jsonschema (tests and subscribers validate with the schema files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.publish.topics import AVAILABILITY_QOS, STATUS_QOS

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


@dataclass(frozen=True)
class TopicSpec:
    leaf: str  # what follows <prefix>/<device_id>/
    retained: bool
    qos: str  # a number, or where it comes from
    direction: str
    schema: str  # file name in SCHEMAS_DIR
    payload: str  # in words


TOPICS = (
    TopicSpec(
        "availability",
        True,
        str(AVAILABILITY_QOS),
        "device → subscribers",
        "availability.schema.json",
        "`online` on connect; `offline` on a clean stop and as the last will",
    ),
    TopicSpec(
        "emotion",
        False,
        "`mqtt.qos` (0 or 1)",
        "device → subscribers",
        "label_event.schema.json",
        "one label event (JSON): label, confidence, ts, source, model, device",
    ),
    TopicSpec(
        "status",
        True,
        str(STATUS_QOS),
        "device → subscribers",
        "status.schema.json",
        "diagnostics (JSON): counters, rates, versions, `model_check`, `state` "
        "(running / paused / stopped); nothing personal",
    ),
    TopicSpec(
        "summary",
        True,
        "1",
        "device → subscribers",
        "summary.schema.json",
        "a well-being summary per period and source (JSON): label shares, face present, mean "
        "confidence, changes; spooled on the unit while the broker is away, in order of `id`",
    ),
    TopicSpec(
        "set/monitoring",
        True,
        "1",
        "subscribers → device",
        "monitoring_command.schema.json",
        "`off` pauses the unit (cameras released, survives a restart), `on` resumes; also "
        "`emotion-device pause\\|resume`",
    ),
)


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema in ``SCHEMAS_DIR`` called ``name``."""
    loaded: dict[str, Any] = json.loads((SCHEMAS_DIR / name).read_text())
    return loaded


def spec_for(leaf: str) -> TopicSpec:
    """The spec of a topic by what follows ``<prefix>/<device_id>/``; KeyError for a topic the
    device does not use."""
    return {spec.leaf: spec for spec in TOPICS}[leaf]


def markdown_table() -> str:
    """The README's topic table, made from ``TOPICS``."""
    lines = [
        "| topic | retained | QoS | direction | payload | schema |",
        "|---|---|---|---|---|---|",
    ]
    for spec in TOPICS:
        lines.append(
            f"| `<prefix>/<device_id>/{spec.leaf}` | {'yes' if spec.retained else 'no'} | "
            f"{spec.qos} | {spec.direction} | {spec.payload} | "
            f"[`{spec.schema}`](device/publish/schemas/{spec.schema}) |"
        )
    return "\n".join(lines)

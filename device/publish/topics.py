"""Topic names and payloads, as pure functions. The prefix is applied here and nowhere else."""

from __future__ import annotations

import json

from device.publish.events import LabelEvent

ONLINE = "online"
OFFLINE = "offline"
AVAILABILITY_QOS = 1
STATUS_QOS = 1
SUMMARY_QOS = 1


def device_topic(prefix: str, device_id: str, leaf: str) -> str:
    """``<prefix>/<device_id>/<leaf>``, e.g. ``emotion-edge/pi-01/emotion``."""
    return f"{prefix}/{device_id}/{leaf}"


def availability_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, "availability")


def emotion_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, "emotion")


def status_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, "status")


def summary_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, "summary")


def command_topic(prefix: str, device_id: str, name: str) -> str:
    """``<prefix>/<device_id>/set/<name>``: a retained command to this device, e.g. monitoring."""
    return device_topic(prefix, device_id, f"set/{name}")


def label_payload(event: LabelEvent) -> bytes:
    """The JSON body of a label event: exactly LABEL_EVENT_KEYS."""
    body = {
        "label": event.label,
        "confidence": round(float(event.confidence), 4),
        "ts": round(float(event.ts), 3),
        "source": event.source,
        "model": event.model,
        "device": event.device,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

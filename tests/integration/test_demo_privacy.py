"""The demo as a user runs it, against a real Mosquitto, with a subscriber on ``#``: every message
on the wire is valid against one of the device's JSON Schemas, and none carries data about a face
(no arrays of numbers, no image bytes, nothing large); nothing reaches the disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from device.publish.reference import spec_for
from tests.unit.test_topic_reference import validate

from .broker import MosquittoBroker, Subscriber
from .device_process import device_env, files_under

MAX_PAYLOAD_BYTES = 512  # a label event is ~150 bytes, the status ~400


def test_whole_demo_run_sends_only_schema_valid_small_messages(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    command = [
        sys.executable,
        "-m",
        "device.cli",
        "demo",
        "--broker",
        f"127.0.0.1:{mosquitto.port}",
    ]
    with Subscriber(mosquitto.port, ["#"]) as sub:
        result = subprocess.run(
            [*command, "--speed", "2"],
            cwd=home,
            env=device_env(home),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        sub.wait_for_payload("emotion-edge/demo/availability", b"offline")
        topics = list(sub._messages)
        messages = [(topic, m.payload) for topic in topics for m in sub.messages(topic)]
    assert result.returncode == 0, result.stderr
    assert "what a subscriber receives" in result.stdout and "offline" in result.stdout
    leaves = {topic.split("/")[-1] for topic in topics}
    assert leaves == {"availability", "emotion", "status", "summary"}
    assert "summaries received" in result.stdout
    assert sum(topic.endswith("/emotion") for topic, _ in messages) >= 3
    for topic, payload in messages:
        assert len(payload) <= MAX_PAYLOAD_BYTES, f"{topic}: {len(payload)} bytes"
        text = payload.decode("utf-8")  # no image bytes: every payload is text
        assert "[" not in text, f"{topic} carries an array: {text}"
        validate(spec_for(topic.split("/")[-1]).schema, payload)
        if text.startswith("{"):  # flat, but a summary's label shares: label -> number
            body = json.loads(text)
            shares = body.pop("shares", {})
            assert all(not isinstance(v, list | dict) for v in [*body.values(), *shares.values()])
    assert files_under(home) == []

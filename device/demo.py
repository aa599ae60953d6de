"""``emotion-device demo``: the device on the sample video, labels shown as a subscriber sees them.

With no broker given, an embedded broker runs on loopback for the length of the demo.
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from device.assets import AssetResolver
from device.config import DeviceConfig, MqttConfig, ReplayConfig, SummariesConfig
from device.errors import ConfigError
from device.publish.mqtt import LabelSubscriber, MqttPublisher
from device.service import DeviceService

DEMO_DEVICE_ID = "demo"
DEMO_SUMMARY_S = 5.0  # the demo shows summaries every few seconds


def parse_broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {value!r} must look like HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def demo_config(
    video: Path, host: str, port: int, speed: float, state_dir: Path | None = None
) -> DeviceConfig:
    """The sample video through the real device; summaries every few seconds (not 15 min) and
    the state (summary spool) in a folder the demo removes."""
    return DeviceConfig(
        device_id=DEMO_DEVICE_ID,
        state_dir=state_dir,
        rgb=ReplayConfig(type="replay", path=video, speed=speed),
        mqtt=MqttConfig(host=host, port=port),
        summaries=SummariesConfig(period_s=DEMO_SUMMARY_S),
    )


def run_demo(video: Path | None, broker: str | None, speed: float = 1.0) -> int:
    video = video or AssetResolver().resolve("sample_video")
    with ExitStack() as stack:
        host, port = parse_broker(broker) if broker else _embedded(stack)
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emotion-demo-")))
        config = demo_config(video, host, port, speed, state)
        printer = _Printer()
        subscriber = LabelSubscriber(host, port, config.mqtt.topic_prefix, DEMO_DEVICE_ID, printer)
        subscriber.start()
        stack.callback(subscriber.stop)
        print(f"demo: {video.name} → device {DEMO_DEVICE_ID} → MQTT {host}:{port}")
        print("what a subscriber receives:")
        stats = DeviceService(config, MqttPublisher(config.mqtt, DEMO_DEVICE_ID)).run()
        time.sleep(0.5)  # let the last messages (and 'offline') arrive
    print(
        f"done: {stats.frames} frames, face in {stats.faces}, "
        f"{printer.labels} label messages and {printer.summaries} summaries received"
    )
    return 0 if printer.labels else 1


def _embedded(stack: ExitStack) -> tuple[str, int]:
    from device.publish.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    port = broker.start()
    stack.callback(broker.stop)
    return "127.0.0.1", port


class _Printer:
    def __init__(self) -> None:
        self.labels = 0
        self.summaries = 0
        self._t0 = time.monotonic()

    def __call__(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/emotion"):
            self.labels += 1
        if topic.endswith("/summary"):
            self.summaries += 1
        elapsed = time.monotonic() - self._t0
        print(f"  {elapsed:6.1f} s  {topic}  {payload.decode(errors='replace')}")
        sys.stdout.flush()

"""A bounded soak on loopback: the device on a looping replayed video while Mosquitto is stopped
and started again every few seconds. Reports whether the device lived through it, every
summary id the subscriber got (lost, duplicated, out of order), and the device's RSS drift.

    .venv/bin/python deploy/soak.py [--minutes 5] [--flap-s 6] [--down-s 3]

Needs Mosquitto (apt install mosquitto) and the sample video (EMOTION_EDGE_ASSET_MIRROR). The
broker keeps the subscriber's session across its restarts (persistence on, QoS 1), so a summary
delivered while the subscriber reconnects is not lost to it; retained replays are not counted.
Exit 0 when nothing was lost, reordered or sent twice by the device, the device still runs, and
RSS grew < 5 %.
A duplicate is either the broker's redelivery to the subscriber (DUP flag: the subscriber's
acknowledgement died with the broker) or the device's resend of a summary whose acknowledgement
died with it (QoS 1 is at least once; subscribers drop an id they have seen).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
VIDEO = "video_rgb/pyfeat_WolfgangLanger_Pexels.mp4"
MAX_RSS_DRIFT = 0.05
WARM_UP_S = 20.0  # RSS is measured from here (models loaded, caches warm)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.conf = folder / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class Collector:
    """A persistent-session subscriber that keeps every summary id it is sent."""

    def __init__(self, port: int, topic: str) -> None:
        self.ids: list[int] = []
        self.redelivered = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="soak-collector", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return  # a retained replay on (re)subscribe, not a delivery
        with self._lock:
            self.ids.append(int(json.loads(msg.payload)["id"]))
            if msg.dup:  # the broker sent it again: our PUBACK did not reach it before a stop
                self.redelivered += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def device_config(folder: Path, port: int, video: Path) -> Path:
    path = folder / "device.toml"
    path.write_text(
        f'device_id = "soak"\nstate_dir = "{folder / "state"}"\n'
        f'[rgb]\ntype = "replay"\npath = "{video}"\nloop = true\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nreconnect_min_s = 1\nreconnect_max_s = 1\n'
        "[summaries]\nperiod_s = 2\n"
    )
    return path


def verdict(ids: list[int]) -> dict[str, object]:
    unique = sorted(set(ids))
    expected = list(range(unique[0], unique[-1] + 1)) if unique else []
    return {
        "received": len(ids),
        "unique": len(unique),
        "duplicated": len(ids) - len(unique),
        "lost": len(set(expected) - set(unique)),
        "in_order": ids == sorted(ids),
        "first": unique[0] if unique else None,
        "last": unique[-1] if unique else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--flap-s", type=float, default=6.0, help="broker up this long")
    parser.add_argument("--down-s", type=float, default=3.0, help="then down this long")
    args = parser.parse_args()
    mirror = Path(os.environ.get("EMOTION_EDGE_ASSET_MIRROR", REPO.parent / "shared" / "assets"))
    with tempfile.TemporaryDirectory(prefix="emotion-soak-") as scratch:
        folder = Path(scratch)
        broker = Broker(folder, free_port())
        broker.start()
        collector = Collector(broker.port, "emotion-edge/soak/summary")
        config = device_config(folder, broker.port, mirror / VIDEO)
        env = {**os.environ, "EMOTION_EDGE_ASSET_MIRROR": str(mirror)}
        device = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        rss_start = rss_end = 0.0
        flaps = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.minutes * 60 and device.poll() is None:
                time.sleep(args.flap_s)
                if not rss_start and time.monotonic() - started > WARM_UP_S:
                    rss_start = psutil.Process(device.pid).memory_info().rss / 2**20
                broker.stop()
                time.sleep(args.down_s)
                broker.start()
                flaps += 1
            time.sleep(args.flap_s)  # the last spooled summaries go out
            alive = device.poll() is None
            rss_end = psutil.Process(device.pid).memory_info().rss / 2**20 if alive else 0.0
        finally:
            if device.poll() is None:
                device.send_signal(signal.SIGTERM)
            _, err = device.communicate(timeout=60)
            time.sleep(1.0)
            collector.close()
            broker.stop()
    drift = (rss_end - rss_start) / rss_start if rss_start else float("nan")
    report = {
        "minutes": args.minutes,
        "broker_restarts": flaps,
        "device_alive_at_end": alive,
        "device_exit_code": device.returncode,
        **verdict(collector.ids),
        "duplicates_redelivered_by_the_broker": collector.redelivered,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_drift": round(drift, 4),
    }
    print(json.dumps(report, indent=2))
    ok = (
        alive
        and report["lost"] == 0
        and report["duplicated"] == collector.redelivered  # none resent by the device
        and report["in_order"]
        and abs(drift) < MAX_RSS_DRIFT
    )
    if not ok:
        print(err[-2000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Well-being summaries on a real device process and a real Mosquitto: spooled while the broker
is away, kept across a device restart, then delivered in order of id, none lost, none twice;
after a broker restart in mid-run the same. The device is frozen (SIGSTOP) while the broker and
the test's subscriber come up, so the subscriber is there before the first delivery."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from device.spool import SPOOL_FILE

from .broker import Subscriber
from .conftest import BrokerFactory
from .device_process import LONG_VIDEO, PREFIX, start_device, write_config

SUMMARY = f"{PREFIX}/itest/summary"
LOOPING = f'type = "replay"\npath = "{LONG_VIDEO}"\nloop = true\n'


def spooled(home: Path) -> int:
    with sqlite3.connect(home / ".local/state/emotion-edge" / SPOOL_FILE) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM summaries").fetchone()
    return int(count)


def ids(sub: Subscriber) -> list[int]:
    return [json.loads(m.payload)["id"] for m in sub.messages(SUMMARY)]


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_summaries_survive_an_outage_and_a_restart_in_order_once(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = broker_factory(start=False)
    config = write_config(tmp_path, broker.port, rgb=LOOPING, extra="[summaries]\nperiod_s = 1\n")
    home = tmp_path / "home"
    first = start_device(config, home)  # the broker is away: summaries are spooled
    time.sleep(4.0)
    stop(first)
    before_restart = spooled(home)
    assert before_restart >= 2
    second = start_device(config, home)  # restarted, the broker still away
    time.sleep(3.0)
    second.send_signal(signal.SIGSTOP)
    try:
        broker.start()
        with Subscriber(broker.port, [SUMMARY]) as sub:
            second.send_signal(signal.SIGCONT)
            sub.wait_for(SUMMARY, before_restart + 3, timeout_s=30)
            # the broker restarts in mid-run: freeze the device just after a delivery
            count = len(ids(sub))
            sub.wait_for(SUMMARY, count + 1, timeout_s=10)
            time.sleep(0.2)
            second.send_signal(signal.SIGSTOP)
            delivered = ids(sub)
        broker.stop()
        second.send_signal(signal.SIGCONT)
        time.sleep(3.0)  # summaries spooled while the broker is down
        second.send_signal(signal.SIGSTOP)
        broker.start()
        with Subscriber(broker.port, [SUMMARY]) as later:
            second.send_signal(signal.SIGCONT)
            later.wait_for(SUMMARY, 3, timeout_s=30)
            time.sleep(1.5)
            stop(second)
            time.sleep(0.5)
            delivered += ids(later)
    finally:
        if second.poll() is None:
            second.send_signal(signal.SIGCONT)
            stop(second)
    assert delivered == list(range(1, len(delivered) + 1))  # in order, none lost, none twice
    assert len(delivered) >= before_restart + 6
    assert spooled(home) == 0  # everything acknowledged left the spool

"""Well-being summaries: the period's numbers, and the spool that keeps them in order on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from device.publish.memory import MemoryPublisher
from device.spool import SPOOL_FILE, Spool
from device.summaries import Summaries, SummarySender, Window
from tests.unit.test_topic_reference import validate


def test_window_shares_presence_confidence_and_changes() -> None:
    window = Window()
    for label, confidence, face in [
        ("no_face", 1.0, False),
        ("happy", 0.8, True),
        ("happy", 0.6, True),
        ("sad", 0.4, True),
    ]:
        window.observe(label, confidence, face)
    body = window.body("rgb", 100.0, 160.0)
    assert body["shares"] == {"happy": 0.5, "no_face": 0.25, "sad": 0.25}
    assert body["face_present"] == 0.75 and body["mean_confidence"] == 0.6
    assert body["changes"] == 2 and body["steps"] == 4
    validate("summary.schema.json", json.dumps({"id": 1, **body}).encode())


def test_summaries_close_each_period_per_source(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=100)
    summaries = Summaries(60.0, spool)
    start = summaries._start
    summaries.observe("rgb", "happy", 0.9, True)
    summaries.observe("fused", "happy", 0.7, True)
    summaries.tick(start + 30)
    assert len(spool) == 0
    summaries.tick(start + 61)
    assert len(spool) == 2
    summaries.tick(start + 200)  # an empty period says nothing
    assert len(spool) == 2


def test_spool_keeps_order_across_reopening_and_drops_the_oldest_beyond_its_cap(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_rows=3)
    for n in range(5):
        spool.put({"source": "rgb", "n": n})
    assert len(spool) == 3 and spool.dropped == 2
    assert stat.S_IMODE((tmp_path / SPOOL_FILE).stat().st_mode) == 0o600
    spool.close()
    again = Spool(tmp_path, max_rows=3)  # a restart
    oldest = again.oldest()
    assert oldest is not None
    row_id, payload = oldest
    assert json.loads(payload) == {"id": 3, "source": "rgb", "n": 2}  # ids are never reused
    again.remove(row_id)
    again.put({"source": "rgb", "n": 5})
    ids = []
    while (item := again.oldest()) is not None:
        ids.append(item[0])
        again.remove(item[0])
    assert ids == [4, 5, 6]


def test_sender_delivers_in_order_and_waits_while_offline(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_rows=100)
    for n in range(3):
        spool.put({"source": "rgb", "n": n})
    publisher = MemoryPublisher()
    publisher.start()
    sender = SummarySender(spool, publisher)
    publisher.set_connected(False)
    sender.pump()
    assert publisher.summaries == [] and len(spool) == 3
    publisher.set_connected(True)
    sender.drain(1.0)
    assert [json.loads(p)["n"] for p in publisher.summaries] == [0, 1, 2]
    assert [json.loads(p)["id"] for p in publisher.summaries] == [1, 2, 3] and len(spool) == 0


@pytest.mark.parametrize("period", [0.0, -1.0])
def test_a_period_below_a_second_is_a_config_error(period: float) -> None:
    from pydantic import ValidationError

    from device.config import SummariesConfig

    with pytest.raises(ValidationError):
        SummariesConfig(period_s=period)

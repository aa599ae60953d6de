"""The single-slot holder, the capture thread and the pacer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from device.config import SyntheticConfig
from device.errors import SourceUnavailable
from device.frames import RgbFrame
from device.sources.latest import CaptureThread, FrameClock, LatestFrame, Pacer
from device.sources.synthetic import SyntheticSource


def frame(index: int) -> RgbFrame:
    return RgbFrame(image=np.zeros((2, 2, 3), np.uint8), ts_s=index / 10, index=index)


class ScriptedSource:
    """Yields ``count`` frames, then raises ``fail_with`` (or ends); records open/close."""

    def __init__(self, count: int, fail_with: Exception | None = None) -> None:
        self.count, self.fail_with = count, fail_with
        self.opened = self.closed = 0
        self.read_calls = 0
        self.open_error: Exception | None = None

    def open(self) -> None:
        if self.open_error is not None:
            raise self.open_error
        self.opened += 1

    def read(self) -> RgbFrame | None:
        self.read_calls += 1
        if self.read_calls <= self.count:
            return frame(self.read_calls - 1)
        if self.fail_with is not None:
            raise self.fail_with
        return None

    def close(self) -> None:
        self.closed += 1


# --- LatestFrame ----------------------------------------------------------------------------


def test_single_slot_keeps_only_the_newest_and_counts_drops() -> None:
    holder = LatestFrame()
    for i in range(3):
        holder.put(frame(i))
    taken = holder.take(timeout_s=0)
    assert taken is not None and taken.index == 2
    assert holder.take(timeout_s=0) is None  # taken frames are not handed out twice
    assert (holder.delivered, holder.dropped) == (1, 2)


def test_a_taken_frame_is_not_counted_as_dropped() -> None:
    holder = LatestFrame()
    holder.put(frame(0))
    holder.take(timeout_s=0)
    holder.put(frame(1))
    holder.take(timeout_s=0)
    assert (holder.delivered, holder.dropped) == (2, 0)


def test_take_waits_up_to_its_timeout() -> None:
    holder = LatestFrame()
    started = time.monotonic()
    assert holder.take(timeout_s=0.1) is None
    assert time.monotonic() - started >= 0.09


def test_take_returns_as_soon_as_a_frame_arrives() -> None:
    holder = LatestFrame()
    threading.Timer(0.05, holder.put, args=(frame(7),)).start()
    started = time.monotonic()
    taken = holder.take(timeout_s=5)
    assert taken is not None and taken.index == 7
    assert time.monotonic() - started < 2


def test_close_wakes_waiters() -> None:
    holder = LatestFrame()
    results: list[RgbFrame | None] = []
    waiters = [threading.Thread(target=lambda: results.append(holder.take())) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.05)
    holder.close()
    for waiter in waiters:
        waiter.join(timeout=2)
        assert not waiter.is_alive()
    assert results == [None, None]
    assert holder.closed


def test_a_frame_put_before_close_is_still_delivered_and_later_puts_are_dropped() -> None:
    holder = LatestFrame()
    holder.put(frame(1))
    holder.close()
    holder.put(frame(2))
    taken = holder.take(timeout_s=0)
    assert taken is not None and taken.index == 1
    assert holder.take(timeout_s=None) is None  # closed and empty: no waiting
    assert holder.dropped == 1


# --- CaptureThread --------------------------------------------------------------------------


def test_slow_consumer_gets_the_newest_frames_and_never_a_backlog() -> None:
    source = SyntheticSource(
        SyntheticConfig(type="synthetic", width_px=32, height_px=24, fps_hz=500, frame_count=150)
    )
    holder = LatestFrame()
    capture = CaptureThread(source, holder)
    capture.start()
    taken: list[RgbFrame] = []
    while (item := holder.take(timeout_s=2)) is not None:
        taken.append(item)
        time.sleep(0.03)  # a consumer far slower than 500 fps
    assert capture.wait_ended(timeout_s=2)
    capture.stop()
    assert capture.error is None and capture.ended
    assert capture.frames_read == 150
    # every frame read was either delivered once or overwritten: at most one ever waited
    assert holder.delivered + holder.dropped == capture.frames_read
    assert holder.dropped > 0
    indices = [f.index for f in taken]
    assert indices == sorted(set(indices))
    assert indices[-1] == 149  # the consumer ends with the newest frame, not a stale one


def test_read_error_is_surfaced_not_swallowed() -> None:
    failure = SourceUnavailable("camera unplugged")
    source = ScriptedSource(count=3, fail_with=failure)
    holder = LatestFrame()
    capture = CaptureThread(source, holder)
    capture.start()
    assert capture.wait_ended(timeout_s=2)
    assert capture.error is failure
    assert holder.closed  # a consumer blocked in take() wakes up
    assert source.closed >= 1
    capture.stop()


def test_unexpected_read_exception_becomes_source_unavailable() -> None:
    source = ScriptedSource(count=1, fail_with=RuntimeError("driver bug"))
    capture = CaptureThread(source, LatestFrame())
    capture.start()
    assert capture.wait_ended(timeout_s=2)
    assert isinstance(capture.error, SourceUnavailable)
    assert isinstance(capture.error.__cause__, RuntimeError)
    capture.stop()


def test_end_of_stream_is_not_an_error() -> None:
    capture = CaptureThread(ScriptedSource(count=2), LatestFrame())
    capture.start()
    assert capture.wait_ended(timeout_s=2)
    assert capture.error is None and capture.frames_read == 2
    capture.stop()


def test_open_error_is_raised_by_start() -> None:
    source = ScriptedSource(count=5)
    source.open_error = SourceUnavailable("camera /dev/video3 cannot be opened: no such device")
    capture = CaptureThread(source, LatestFrame())
    with pytest.raises(SourceUnavailable, match="video3"):
        capture.start()
    assert capture.ended and source.read_calls == 0


def test_stop_joins_closes_and_wakes_a_slow_source() -> None:
    source = SyntheticSource(SyntheticConfig(type="synthetic", width_px=8, height_px=8, fps_hz=0.5))
    holder = LatestFrame()
    capture = CaptureThread(source, holder)
    capture.start()
    assert holder.take(timeout_s=2) is not None  # frame 0 is due at once; frame 1 in 2 s
    started = time.monotonic()
    capture.stop()
    assert time.monotonic() - started < 1.5
    assert capture.ended and holder.closed
    assert source.read() is None  # closed


# --- Pacer ----------------------------------------------------------------------------------


def test_pacer_sleeps_until_due_and_interrupt_wakes_it() -> None:
    pacer = Pacer(speed=2.0)
    assert pacer.wait_until(10.0)  # the first frame anchors the clock: due now
    started = time.monotonic()
    assert pacer.wait_until(10.2)  # 0.2 s of media at speed 2
    assert time.monotonic() - started >= 0.09
    threading.Timer(0.05, pacer.interrupt).start()
    started = time.monotonic()
    assert not pacer.wait_until(100.0)
    assert time.monotonic() - started < 2


def test_frame_clock_numbers_frames_stops_at_the_count_and_close_wakes_it() -> None:
    clock = FrameClock(fps_hz=50.0, frame_count=3)
    assert clock.tick() is None  # not opened yet
    clock.open()
    assert [clock.tick() for _ in range(4)] == [(0, 0.0), (1, 0.02), (2, 0.04), None]
    clock.open()  # opened again: from frame 0
    assert clock.tick() == (0, 0.0)
    slow = FrameClock(fps_hz=0.01)  # the next frame is due in 100 s
    slow.open()
    assert slow.tick() == (0, 0.0)
    threading.Timer(0.05, slow.close).start()
    started = time.monotonic()
    assert slow.tick() is None and time.monotonic() - started < 2
    with pytest.raises(ValueError, match="fps_hz"):
        FrameClock(fps_hz=0.0)

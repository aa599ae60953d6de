"""Between a source and the main loop: a single-slot holder, the capture thread, frame pacing.

A camera does not wait for a slow consumer, so neither do we: the capture thread overwrites the
one slot and counts what was never taken. Nothing here ever grows with the consumer's lag.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Generic, Protocol, TypeVar

from device.errors import SourceUnavailable
from device.frames import RgbFrame, ThermalFrame

logger = logging.getLogger(__name__)


FrameT = TypeVar("FrameT", RgbFrame, ThermalFrame)
FrameT_co = TypeVar("FrameT_co", RgbFrame, ThermalFrame, covariant=True)


class Source(Protocol[FrameT_co]):
    """What the capture thread needs of an RGB or a thermal source."""

    def open(self) -> None: ...

    def read(self) -> FrameT_co | None: ...

    def close(self) -> None: ...


class LatestFrame(Generic[FrameT]):
    """Holds the newest frame not yet taken; ``put`` overwrites, ``take`` empties the slot."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slot: FrameT | None = None
        self._closed = False
        self._delivered = 0
        self._dropped = 0

    @property
    def delivered(self) -> int:
        """Frames handed out by ``take``."""
        return self._delivered

    @property
    def dropped(self) -> int:
        """Frames overwritten before anyone took them, or put after ``close``."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, frame: FrameT) -> None:
        """Store ``frame``, replacing (and counting as dropped) an untaken one."""
        with self._cond:
            if self._closed:
                self._dropped += 1
                return
            if self._slot is not None:
                self._dropped += 1
            self._slot = frame
            self._cond.notify_all()

    def take(self, timeout_s: float | None = None) -> FrameT | None:
        """The newest untaken frame, waiting up to ``timeout_s`` (None = forever).

        Returns None on timeout, or once the holder is closed and empty. A frame put before
        ``close`` is still handed out.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._closed, timeout_s)
            frame, self._slot = self._slot, None
            if frame is not None:
                self._delivered += 1
            return frame

    def close(self) -> None:
        """Wake every waiter; later puts are dropped, later takes do not wait."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class CaptureThread(Generic[FrameT]):
    """Reads ``source`` on a daemon thread into ``holder`` until end of stream or ``stop()``.

    ``start()`` returns once the source is open and re-raises its open error. A read error
    ends the thread and is kept in ``error``; the holder is closed when the thread ends, so a
    consumer blocked in ``take`` wakes up and can look at ``ended`` and ``error``.
    """

    def __init__(
        self, source: Source[FrameT], holder: LatestFrame[FrameT], name: str = "rgb-capture"
    ) -> None:
        self._source: Source[FrameT] = source
        self._holder: LatestFrame[FrameT] = holder
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._ended = threading.Event()
        self._open_error: BaseException | None = None
        self._error: SourceUnavailable | None = None
        self._frames_read = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def error(self) -> SourceUnavailable | None:
        """Why reading stopped early, or None (end of stream, stop(), or still running)."""
        return self._error

    @property
    def ended(self) -> bool:
        """True once the thread has finished reading (for whatever reason)."""
        return self._ended.is_set()

    @property
    def frames_read(self) -> int:
        return self._frames_read

    def start(self, open_timeout_s: float = 30.0) -> None:
        """Start the thread and wait until the source has opened; raise SourceUnavailable if not."""
        self._thread.start()
        if not self._opened.wait(open_timeout_s):
            self.stop(timeout_s=0.5)
            raise SourceUnavailable(f"the source did not open within {open_timeout_s:g} s")
        if isinstance(self._open_error, SourceUnavailable):
            raise self._open_error
        if self._open_error is not None:
            raise SourceUnavailable(f"the source failed to open: {self._open_error}") from (
                self._open_error
            )

    def wait_ended(self, timeout_s: float | None = None) -> bool:
        """Block until the thread has finished reading; False on timeout."""
        return self._ended.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop, join it, close the source and the holder. Idempotent.

        A thread still blocked in read() after a short grace is woken by closing the source
        from here; the project's sources allow that (close wakes a blocked read).
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(min(timeout_s, 0.25))
        if self._thread.is_alive():
            self._source.close()
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("capture thread %s did not stop in time", self._thread.name)
        self._source.close()
        self._holder.close()

    def _run(self) -> None:
        try:
            self._source.open()
        except BaseException as exc:  # handed to the caller of start()
            self._open_error = exc
            self._holder.close()
            self._ended.set()
            self._opened.set()
            return
        self._opened.set()
        try:
            self._read_loop()
        finally:
            self._source.close()
            self._holder.close()
            self._ended.set()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._source.read()
            except SourceUnavailable as exc:
                self._error = exc
                return
            except Exception as exc:
                logger.exception("capture thread %s failed", self._thread.name)
                self._error = SourceUnavailable(f"the source failed while reading: {exc}")
                self._error.__cause__ = exc
                return
            if frame is None:
                return
            self._frames_read += 1
            self._holder.put(frame)


class Pacer:
    """Sleeps until each frame's due time on the monotonic clock, so files behave like cameras.

    The first ``wait_until`` anchors media time to now; ``speed`` 2.0 plays twice as fast.
    ``interrupt()`` (called by a source's close) wakes a sleeping reader at once.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._speed = speed
        self._origin: float | None = None
        self._interrupted = threading.Event()

    def reset(self) -> None:
        """Forget the anchor and any interrupt (a source was opened again)."""
        self._origin = None
        self._interrupted.clear()

    def wait_until(self, media_ts_s: float) -> bool:
        """Sleep until ``media_ts_s`` is due; False if interrupted before or during the wait."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - media_ts_s / self._speed
        delay = self._origin + media_ts_s / self._speed - now
        if delay > 0:
            return not self._interrupted.wait(delay)
        return not self._interrupted.is_set()

    def interrupt(self) -> None:
        self._interrupted.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()


class FrameClock:
    """Numbered frames due at a fixed rate (``ts_s`` = index / fps_hz), paced like a camera.

    What a generated source needs besides its pictures: ``open`` starts at frame 0, ``tick``
    waits for the next frame's due time and returns its index and ``ts_s`` (None once
    ``frame_count`` frames were given, or after ``close``, which also wakes a waiting tick).
    """

    def __init__(self, fps_hz: float, frame_count: int | None = None) -> None:
        if fps_hz <= 0:
            raise ValueError("fps_hz must be > 0")
        self.fps_hz = fps_hz
        self.frame_count = frame_count
        self._pacer = Pacer()
        self._index = 0
        self._open = False

    def open(self) -> None:
        self._pacer.reset()
        self._index = 0
        self._open = True

    def tick(self) -> tuple[int, float] | None:
        count = self.frame_count
        if not self._open or (count is not None and self._index >= count):
            return None
        index, ts_s = self._index, self._index / self.fps_hz
        if not self._pacer.wait_until(ts_s):
            return None
        self._index += 1
        return index, ts_s

    def close(self) -> None:
        self._open = False
        self._pacer.interrupt()

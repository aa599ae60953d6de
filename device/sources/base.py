"""The RGB source interface every camera, file, replay and generator implements."""

from __future__ import annotations

from typing import Protocol

from device.frames import RgbFrame


class RgbSource(Protocol):
    """open() → read() until None → close(). read() blocks until the next frame.

    Errors: open() raises SourceUnavailable with one sentence a person can act on.
    close() is idempotent and may be called from another thread (it wakes a waiting read);
    read() after close() returns None, it never raises.
    """

    def open(self) -> None: ...

    def read(self) -> RgbFrame | None:
        """The next frame, or None when the stream has ended (files, recordings)."""
        ...

    def close(self) -> None: ...

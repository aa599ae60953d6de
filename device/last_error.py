"""The last error the device logged, as a category and a time, for the status message.

A logging handler on the ``device`` logger keeps the newest record at ERROR or above: the
exception's class when there is one, else the module that logged it (``classifier``,
``latest``...), never the message (which may name files or hosts). Nothing about a person.
"""

from __future__ import annotations

import logging
import threading


class LastErrorHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self._lock_last = threading.Lock()
        self.kind = ""
        self.at = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            kind = record.exc_info[0].__name__
        else:
            kind = record.name.rsplit(".", 1)[-1]
        with self._lock_last:
            self.kind, self.at = kind[:64], record.created

    def status(self) -> dict[str, str | float]:
        """``last_error`` (category) and ``last_error_at`` (UNIX time), or nothing yet."""
        with self._lock_last:
            if not self.kind:
                return {}
            return {"last_error": self.kind, "last_error_at": round(self.at, 1)}


def attach(handler: LastErrorHandler, logger_name: str = "device") -> None:
    logging.getLogger(logger_name).addHandler(handler)


def detach(handler: LastErrorHandler, logger_name: str = "device") -> None:
    logging.getLogger(logger_name).removeHandler(handler)

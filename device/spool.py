"""The summary spool: well-being summaries wait here, in order, until the broker has them.

One SQLite file in the state directory (owner-only), one row per summary; the row id is the
summary's message id (AUTOINCREMENT: never reused, so ids rise across restarts). A row is
deleted once the broker acknowledged it (QoS 1). Beyond ``max_rows`` the oldest rows are
dropped, counted and logged. Only label aggregates are stored: no pixels, landmarks or
temperatures.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPOOL_FILE = "summaries.sqlite3"


class Spool:
    def __init__(self, folder: Path, max_rows: int) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / SPOOL_FILE
        self.max_rows = max_rows
        self.dropped = 0
        old_umask = os.umask(0o077)  # the file (and its journal) owner-only from the start
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS summaries "
                "(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
            )
        finally:
            os.umask(old_umask)
        (self._count,) = self._db.execute("SELECT COUNT(*) FROM summaries").fetchone()

    def put(self, body: dict[str, Any]) -> None:
        """Append one summary; drop the oldest beyond ``max_rows`` (counted, logged)."""
        self._db.execute("INSERT INTO summaries (body) VALUES (?)", (json.dumps(body),))
        self._count += 1
        excess = self._count - self.max_rows
        if excess > 0:
            self._db.execute(
                "DELETE FROM summaries WHERE id IN (SELECT id FROM summaries ORDER BY id LIMIT ?)",
                (excess,),
            )
            self.dropped += excess
            self._count -= excess
            logger.warning(
                "summary spool full (%d): dropped the %d oldest undelivered summaries",
                self.max_rows,
                excess,
            )

    def oldest(self) -> tuple[int, bytes] | None:
        """The oldest undelivered summary as (id, JSON payload with its ``id``), or None."""
        if not self._count:  # the loop asks every frame: no query while nothing waits
            return None
        row = self._db.execute("SELECT id, body FROM summaries ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        body = {"id": row[0], **json.loads(row[1])}
        return row[0], json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def remove(self, row_id: int) -> None:
        self._count -= self._db.execute("DELETE FROM summaries WHERE id = ?", (row_id,)).rowcount

    def __len__(self) -> int:
        return int(self._count)

    def close(self) -> None:
        self._db.close()

"""The status's last error: a category and a time, never the message."""

from __future__ import annotations

import logging

from device.last_error import LastErrorHandler, attach, detach


def test_keeps_the_newest_error_category_without_its_message() -> None:
    handler = LastErrorHandler()
    attach(handler)
    log = logging.getLogger("device.inference.classifier")
    try:
        assert handler.status() == {}
        log.warning("not an error")
        assert handler.status() == {}
        log.error("model not replaced: /home/alice/model.onnx is corrupt")
        first = handler.status()
        assert first["last_error"] == "classifier" and first["last_error_at"] > 0
        try:
            raise TimeoutError("camera at 10.0.0.7 did not answer")
        except TimeoutError:
            logging.getLogger("device.sources.latest").exception("capture thread failed")
        assert handler.status()["last_error"] == "TimeoutError"
        assert "alice" not in str(handler.status()) and "10.0.0.7" not in str(handler.status())
    finally:
        detach(handler)
    log.error("after detach")
    assert handler.status()["last_error"] == "TimeoutError"

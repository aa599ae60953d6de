"""A throw-away MQTT broker inside the process, for the demo only (the only amqtt import).

amqtt speaks MQTT 3.1.1 and runs on asyncio; here it gets its own event loop in a daemon thread,
listens on 127.0.0.1 on a free port and lets anyone connect. The product and the integration
tests use a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
BIND_ATTEMPTS = 3
NOISY_LOGGERS = ("amqtt", "transitions")


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def broker_config(port: int, host: str = HOST) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener, anonymous clients allowed."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """``start()`` returns the port; ``stop()`` shuts the broker and its thread down."""

    def __init__(self, host: str = HOST) -> None:
        self._host = host
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def port(self) -> int | None:
        return self._port

    def start(self, timeout_s: float = START_TIMEOUT_S) -> int:
        """Start listening on a free port of ``host`` and return it."""
        if self._port is not None:
            return self._port
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="embedded-mqtt-broker", daemon=True
        )
        self._thread.start()
        self._port = self._bind(timeout_s)
        logger.info("embedded MQTT broker listening on %s:%d", self._host, self._port)
        return self._port

    def stop(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Shut the broker down and end its thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._broker is not None:
            self._run(self._broker.shutdown(), timeout_s)
        self._run(_cancel_other_tasks(), timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = self._broker = None
        self._port = None

    def _bind(self, timeout_s: float) -> int:
        from amqtt.errors import BrokerError

        for attempt in range(1, BIND_ATTEMPTS + 1):
            port = free_port(self._host)
            try:
                self._run(self._start_broker(port), timeout_s)
            except BrokerError:  # another process took the port in between
                if attempt == BIND_ATTEMPTS:
                    self.stop(timeout_s)
                    raise
                continue
            return port
        raise AssertionError("unreachable")

    async def _start_broker(self, port: int) -> None:
        from amqtt.broker import Broker

        broker = Broker(broker_config(port, self._host), loop=asyncio.get_running_loop())
        await broker.start()
        self._broker = broker

    def _run(self, coro: Any, timeout_s: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

"""Fixtures for tests against a real Mosquitto broker (started per test on a free port).

- ``mosquitto``: a running anonymous broker (:class:`MosquittoBroker`: ``host``, ``port``).
- ``mosquitto_auth``: a broker that needs a password; ``.users`` maps user to password
  (``AUTH_USER`` / ``AUTH_PASSWORD``).
- ``broker_factory``: ``broker_factory(port=None, users=None, tls=None, start=True)`` for more
  brokers, e.g. one started later on a port a publisher is already retrying; ``tls`` is
  ``(certfile, keyfile)``, see ``broker.make_tls_cert``.
- ``publisher_factory``: ``publisher_factory(config, device_id)`` -> MqttPublisher, stopped at
  teardown.
All are skipped when the ``mosquitto`` binary is absent, except on CI (``CI`` set), where that
is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device.config import MqttConfig
from device.publish.mqtt import MqttPublisher

from .broker import MosquittoBroker, mosquitto_binary

AUTH_USER = "device-01"
AUTH_PASSWORD = "correct horse battery"

BrokerFactory = Callable[..., MosquittoBroker]
PublisherFactory = Callable[[MqttConfig, str], MqttPublisher]


@pytest.fixture(scope="session")
def mosquitto_path() -> str:
    path = mosquitto_binary()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed, but CI must run the broker tests")
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    return path


@pytest.fixture
def broker_factory(mosquitto_path: str, tmp_path: Path) -> Iterator[BrokerFactory]:
    brokers: list[MosquittoBroker] = []

    def make(
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        start: bool = True,
        client_ca: Path | None = None,
        acl: Path | None = None,
    ) -> MosquittoBroker:
        broker = MosquittoBroker(
            workdir=tmp_path, users=dict(users or {}), tls=tls, client_ca=client_ca, acl=acl
        )
        if port is not None:
            broker.port = port
        brokers.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(broker_factory: BrokerFactory) -> MosquittoBroker:
    return broker_factory()


@pytest.fixture
def mosquitto_auth(broker_factory: BrokerFactory) -> MosquittoBroker:
    return broker_factory(users={AUTH_USER: AUTH_PASSWORD})


@pytest.fixture
def publisher_factory() -> Iterator[PublisherFactory]:
    publishers: list[MqttPublisher] = []

    def make(config: MqttConfig, device_id: str) -> MqttPublisher:
        publisher = MqttPublisher(config, device_id)
        publishers.append(publisher)
        return publisher

    yield make
    for publisher in publishers:
        publisher.stop(timeout_s=2.0)

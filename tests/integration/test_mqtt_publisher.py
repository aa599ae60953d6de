"""MqttPublisher against a real Mosquitto (and once against the embedded demo broker)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from device.config import MqttConfig
from device.errors import EX_NOPERM, BrokerAuthError, ConfigError
from device.publish.base import STATUS_KEYS, Publisher
from device.publish.events import LABEL_EVENT_KEYS, LabelEvent
from device.publish.mqtt import MAX_QUEUED_MESSAGES, MqttPublisher
from device.publish.topics import (
    OFFLINE,
    ONLINE,
    availability_topic,
    emotion_topic,
    status_topic,
)

from .broker import (
    MosquittoBroker,
    Received,
    Subscriber,
    free_port,
    make_tls_cert,
    mqtt_config,
)
from .conftest import AUTH_PASSWORD, AUTH_USER, BrokerFactory, PublisherFactory

DEVICE = "pi-test-01"
PREFIX = "emotion-edge"
AVAILABILITY = availability_topic(PREFIX, DEVICE)
EMOTION = emotion_topic(PREFIX, DEVICE)
STATUS = status_topic(PREFIX, DEVICE)
ALL_TOPICS = [f"{PREFIX}/#"]


def event(label: str = "happy", confidence: float = 0.81234567) -> LabelEvent:
    return LabelEvent(label, confidence, time.time(), "rgb", "fer2013_hgb@1a2b3c4d", DEVICE)


def started(factory: PublisherFactory, config: MqttConfig) -> MqttPublisher:
    publisher = factory(config, DEVICE)
    publisher.start(timeout_s=5.0)
    return publisher


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_satisfies_publisher_protocol() -> None:
    assert isinstance(MqttPublisher(mqtt_config(1883), DEVICE), Publisher)


def test_needs_a_host() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.host"):
        MqttPublisher(MqttConfig(), DEVICE)


def test_publish_rejects_anything_but_a_label_event() -> None:
    publisher = MqttPublisher(mqtt_config(1883), DEVICE)
    with pytest.raises(TypeError, match="LabelEvent"):
        publisher.publish({"label": "happy", "frame": b"pixels"})  # type: ignore[arg-type]
    assert publisher.published == 0 and publisher.dropped_offline == 0


def test_imports_without_paho_or_amqtt() -> None:
    code = (
        "import sys, device.publish.mqtt, device.publish.embedded_broker, device.publish.memory\n"
        "assert not [m for m in sys.modules if m.startswith(('paho', 'amqtt'))], sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def retained(port: int, topic: str) -> Received:
    """What a subscriber that arrives now gets on ``topic``: the retained message."""
    with Subscriber(port, [topic]) as late:
        return late.wait_for(topic)[0]


def test_online_retained_after_start(
    mosquitto: MosquittoBroker, publisher_factory: PublisherFactory
) -> None:
    with Subscriber(mosquitto.port, ALL_TOPICS) as sub:
        publisher = started(publisher_factory, mqtt_config(mosquitto.port))
        assert publisher.connected
        sub.wait_for_payload(AVAILABILITY, ONLINE.encode())  # now the broker holds it
    got = retained(mosquitto.port, AVAILABILITY)
    assert (got.payload, got.retain, got.qos) == (ONLINE.encode(), True, 1)
    assert f"as emotion-edge-{DEVICE}" in mosquitto.log()  # default client id


@pytest.mark.parametrize("qos", [0, 1])
def test_labels_carry_exactly_the_event_keys(
    mosquitto: MosquittoBroker, publisher_factory: PublisherFactory, qos: int
) -> None:
    with Subscriber(mosquitto.port, ALL_TOPICS) as sub:
        publisher = started(publisher_factory, mqtt_config(mosquitto.port, qos=qos))
        assert all(publisher.publish(event(label)) for label in ("happy", "sad", "neutral"))
        got = sub.wait_for(EMOTION, count=3)
    bodies = [json.loads(message.payload) for message in got]
    assert all(set(body) == LABEL_EVENT_KEYS for body in bodies)
    assert [body["label"] for body in bodies] == ["happy", "sad", "neutral"]
    assert bodies[0]["confidence"] == 0.8123 and bodies[0]["device"] == DEVICE
    assert not any(message.retain for message in got)
    assert publisher.published == 3 and publisher.dropped_offline == 0


def test_stop_leaves_retained_offline(
    mosquitto: MosquittoBroker, publisher_factory: PublisherFactory
) -> None:
    publisher = started(publisher_factory, mqtt_config(mosquitto.port))
    publisher.stop()  # waits for the broker's PUBACK of "offline"
    publisher.stop()  # idempotent
    assert not publisher.connected
    got = retained(mosquitto.port, AVAILABILITY)
    assert (got.payload, got.retain) == (OFFLINE.encode(), True)


KILLED_CLIENT = textwrap.dedent(
    """
    import sys, time
    from device.config import MqttConfig
    from device.publish.mqtt import MAX_QUEUED_MESSAGES, MqttPublisher
    config = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]))
    publisher = MqttPublisher(config, sys.argv[2])
    publisher.start(timeout_s=5.0)
    print("connected" if publisher.connected else "offline", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_makes_the_broker_send_the_last_will(mosquitto: MosquittoBroker) -> None:
    command = [sys.executable, "-c", KILLED_CLIENT, str(mosquitto.port), DEVICE]
    with (
        Subscriber(mosquitto.port, ALL_TOPICS) as sub,
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc,
    ):
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
            sub.wait_for_payload(AVAILABILITY, ONLINE.encode())
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
            will = sub.wait_for_payload(AVAILABILITY, OFFLINE.encode(), timeout_s=5.0)
        finally:
            proc.kill()
    assert not will.retain  # a live delivery; the broker keeps the retained copy:
    assert retained(mosquitto.port, AVAILABILITY).payload == OFFLINE.encode()


def test_right_password_connects(
    mosquitto_auth: MosquittoBroker, publisher_factory: PublisherFactory
) -> None:
    password = SecretStr(AUTH_PASSWORD)
    config = mqtt_config(mosquitto_auth.port, username=AUTH_USER, password=password)
    assert started(publisher_factory, config).connected


@pytest.mark.parametrize("username", [AUTH_USER, None])
def test_refused_credentials_raise_one_line_auth_error(
    mosquitto_auth: MosquittoBroker, publisher_factory: PublisherFactory, username: str | None
) -> None:
    password = SecretStr("wrong-secret-xyz")
    config = mqtt_config(mosquitto_auth.port, username=username, password=password)
    publisher = publisher_factory(config, DEVICE)
    t0 = time.monotonic()
    with pytest.raises(BrokerAuthError) as caught:
        publisher.start(timeout_s=5.0)
    assert time.monotonic() - t0 < 3.0
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert "wrong-secret-xyz" not in message
    assert f"127.0.0.1:{mosquitto_auth.port}" in message
    assert (repr(AUTH_USER) if username else "anonymous") in message
    assert caught.value.exit_code == EX_NOPERM
    assert not publisher.connected and publisher.fatal_error is caught.value


def test_credentials_changed_while_running_sets_fatal_error(
    broker_factory: BrokerFactory, publisher_factory: PublisherFactory
) -> None:
    first = broker_factory(users={AUTH_USER: AUTH_PASSWORD})
    config = mqtt_config(first.port, username=AUTH_USER, password=SecretStr(AUTH_PASSWORD))
    publisher = started(publisher_factory, config)
    assert publisher.connected and publisher.fatal_error is None
    first.stop()
    broker_factory(port=first.port, users={AUTH_USER: "rotated-password"})
    assert wait_until(lambda: publisher.fatal_error is not None, timeout_s=8.0)
    assert isinstance(publisher.fatal_error, BrokerAuthError)
    assert not publisher.connected


def test_unreachable_broker_retries_until_it_appears(
    broker_factory: BrokerFactory,
    publisher_factory: PublisherFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    publisher = publisher_factory(mqtt_config(port, reconnect_max_s=2.0), DEVICE)
    t0 = time.monotonic()
    publisher.start(timeout_s=5.0)
    assert time.monotonic() - t0 < 2.0  # connection refused is answered at once
    assert not publisher.connected
    assert "not reachable" in caplog.text
    assert publisher.publish(event()) is False
    assert (publisher.dropped_offline, publisher.published) == (1, 0)

    broker = broker_factory(port=port)
    assert wait_until(lambda: publisher.connected, timeout_s=2.0 + 3.0)  # back-off cap + slack
    with Subscriber(broker.port, ALL_TOPICS) as sub:
        assert sub.wait_for(AVAILABILITY)[0].payload == ONLINE.encode()
    assert publisher.publish(event()) is True
    assert (publisher.dropped_offline, publisher.published) == (1, 1)


def test_broker_restart_resends_online_and_status(
    broker_factory: BrokerFactory, publisher_factory: PublisherFactory
) -> None:
    first = broker_factory()
    publisher = started(publisher_factory, mqtt_config(first.port))
    assert publisher.publish_status({"fps": 9.7, "version": "0.1.0"})
    first.stop()  # persistence false: the broker forgets every retained message
    assert wait_until(lambda: not publisher.connected, timeout_s=3.0)
    assert publisher.publish(event()) is False
    second = broker_factory(port=first.port)
    assert wait_until(lambda: publisher.connected, timeout_s=5.0)
    with Subscriber(second.port, ALL_TOPICS) as sub:
        assert sub.wait_for(AVAILABILITY)[0].payload == ONLINE.encode()
        assert json.loads(sub.wait_for(STATUS)[0].payload) == {"fps": 9.7, "version": "0.1.0"}
    assert publisher.dropped_offline == 1


def test_unacknowledged_labels_are_dropped_not_resent(
    broker_factory: BrokerFactory, publisher_factory: PublisherFactory
) -> None:
    first = broker_factory()
    publisher = started(publisher_factory, mqtt_config(first.port, qos=1))
    first.send_signal(signal.SIGSTOP)  # the connection stays up, but no PUBACK comes back
    count = MAX_QUEUED_MESSAGES + 2
    sent = [publisher.publish(event(f"label-{i}")) for i in range(count)]
    # paho's window (which may still hold "online") is full: dropped, not queued without bound
    assert sent.count(False) >= 2 and sent[-1] is False
    first.send_signal(signal.SIGKILL)  # the kernel closes the socket: the publisher notices
    first.stop()
    second = broker_factory(port=first.port)
    with Subscriber(second.port, ALL_TOPICS) as sub:
        assert wait_until(lambda: publisher.connected, timeout_s=5.0)
        sub.wait_for_payload(AVAILABILITY, ONLINE.encode())
        assert publisher.publish(event("fresh"))
        got = sub.wait_for(EMOTION)
        time.sleep(0.2)
        assert [json.loads(m.payload)["label"] for m in sub.messages(EMOTION)] == ["fresh"]
    assert got and publisher.dropped_offline == count  # unacknowledged ones were not re-sent


def test_stop_is_bounded_when_the_broker_hangs(
    mosquitto: MosquittoBroker,
    publisher_factory: PublisherFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = started(publisher_factory, mqtt_config(mosquitto.port, qos=1))
    mosquitto.send_signal(signal.SIGSTOP)
    try:
        for i in range(MAX_QUEUED_MESSAGES):
            publisher.publish(event(f"label-{i}"))
        t0 = time.monotonic()
        publisher.stop(timeout_s=1.0)
        assert time.monotonic() - t0 < 2.5
        assert "not acknowledged" in caplog.text
    finally:
        mosquitto.send_signal(signal.SIGCONT)


def test_status_is_retained_and_allow_listed(
    mosquitto: MosquittoBroker, publisher_factory: PublisherFactory
) -> None:
    publisher = started(publisher_factory, mqtt_config(mosquitto.port))
    status = {"fps": 9.8, "frames_total": 1200, "model": "fer2013_hgb@1a2b3c4d", "uptime_s": 120}
    with Subscriber(mosquitto.port, [STATUS]) as sub:
        assert publisher.publish_status(status)
        with pytest.raises(ValueError, match="face_crop"):
            publisher.publish_status({"fps": 1.0, "face_crop": "base64..."})
        sub.wait_for(STATUS)
    got = retained(mosquitto.port, STATUS)
    body = json.loads(got.payload)
    assert got.retain and body == status and set(body) <= STATUS_KEYS


def test_tls_with_the_configured_ca(
    broker_factory: BrokerFactory, publisher_factory: PublisherFactory, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = make_tls_cert(tmp_path)
    broker = broker_factory(tls=(cert, key))
    publisher = started(publisher_factory, mqtt_config(broker.port, tls_ca_file=cert))
    assert publisher.connected
    assert publisher.publish(event())


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_ca_file"):
        MqttPublisher(mqtt_config(1883, tls_ca_file=tmp_path / "nope.pem"), DEVICE)


def test_embedded_broker_end_to_end(publisher_factory: PublisherFactory) -> None:
    pytest.importorskip("amqtt")
    from device.publish.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    port = broker.start()
    try:
        with Subscriber(port, ALL_TOPICS) as sub:
            publisher = started(publisher_factory, mqtt_config(port))
            assert publisher.connected
            assert publisher.publish(event("surprise"))
            label = json.loads(sub.wait_for(EMOTION)[0].payload)
            publisher.stop()
            sub.wait_for_payload(AVAILABILITY, OFFLINE.encode())
        assert set(label) == LABEL_EVENT_KEYS and label["label"] == "surprise"
    finally:
        broker.stop()
    broker.stop()  # idempotent

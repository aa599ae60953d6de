"""Label events to an MQTT broker with paho-mqtt 2.x: the only module that imports paho.

Protocol choice: **MQTT 3.1.1**, clean session.
- The demo's embedded broker (amqtt) speaks 3.1.1 only; it answers a v5 CONNECT with
  "unacceptable protocol version", and ``MqttConfig`` has no protocol switch. One protocol keeps
  one code path for the product (Mosquitto) and the demo.
- What v5 would add is small here. Message expiry protects subscribers with persistent sessions
  from stale labels, but labels are QoS 0 by default and never retained, and this client never
  queues them while offline. A v5 PUBACK reason code would show an ACL denial that a 3.1.1
  client cannot see; the integration tests check the ACL set-up instead.
- paho maps 3.1.1 CONNACK codes onto v5 ``ReasonCode`` objects, so the callbacks are
  protocol-neutral. Switching later is one argument in :meth:`MqttPublisher._build_client`.

Resilience (style rule R6): the last will is ``offline`` (retained, QoS 1) on the availability
topic, and every successful connect re-publishes ``online`` and the last status. A refused
username or password is fatal (:class:`BrokerAuthError`). Any other failure is retried by paho's
network thread with capped exponential back-off. While offline, labels are dropped and counted.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from device.config import MqttConfig
from device.errors import BrokerAuthError, BrokerUnavailable, ConfigError, EmotionEdgeError
from device.pause import parse_command
from device.publish.base import Publisher, StatusValue, status_payload
from device.publish.events import LabelEvent
from device.publish.tls_check import check_tls, tls_context
from device.publish.topics import (
    AVAILABILITY_QOS,
    OFFLINE,
    ONLINE,
    STATUS_QOS,
    SUMMARY_QOS,
    availability_topic,
    command_topic,
    emotion_topic,
    label_payload,
    status_topic,
    summary_topic,
)

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

# Caps QoS-1 messages held by paho (in flight + queued); paho's default 0 means unlimited RAM.
MAX_QUEUED_MESSAGES = 10
# "Bad user name or password" and "Not authorized" (paho maps 3.1.1 CONNACK 4 and 5 onto these).
AUTH_REASON_CODES = frozenset({134, 135})


class MqttPublisher:
    """Publishes :class:`LabelEvent` s and diagnostics for one device; see the module docstring."""

    def __init__(self, config: MqttConfig, device_id: str) -> None:
        if config.host is None:
            raise ConfigError("mqtt.host is not set, so there is no broker to publish to")
        self._config = config
        self._host = config.host
        self._where = f"{config.host}:{config.port}"
        self._availability = availability_topic(config.topic_prefix, device_id)
        self._emotion = emotion_topic(config.topic_prefix, device_id)
        self._status = status_topic(config.topic_prefix, device_id)
        self._monitoring = command_topic(config.topic_prefix, device_id, "monitoring")
        self._summary = summary_topic(config.topic_prefix, device_id)
        self._connections = 0
        self._on_monitoring: Callable[[bool], None] | None = None
        self._client_id = config.client_id or f"emotion-edge-{device_id}"
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._first_attempt = threading.Event()
        self._published = 0
        self._dropped = 0
        self._dropped_reported = 0
        self._fatal: BrokerAuthError | None = None
        self._last_status: bytes | None = None
        self._started = False
        self._stopping = False
        self._client = self._build_client()

    # -- public API -----------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect in the background and wait up to ``timeout_s`` for the first answer.

        Returns when connected, or when the broker is unreachable (paho keeps retrying).
        Raises :class:`BrokerAuthError` if the broker refuses the credentials.
        """
        if self._started:
            return
        self._started = True
        if self._config.tls_ca_file is not None:
            check_tls(self._config)  # a certificate problem is fatal, not retried forever
        self._client.connect_async(self._host, self._config.port, self._config.keepalive_s)
        self._client.loop_start()
        self._first_attempt.wait(timeout_s)
        if self._fatal is not None:
            self._client.loop_stop()
            raise self._fatal
        if not self._connected.is_set():
            logger.warning(
                "MQTT broker %s is not reachable yet; retrying in the background (at most every "
                "%s s); labels are dropped until it connects",
                self._where,
                self._config.reconnect_max_s,
            )

    def on_monitoring(self, handler: Callable[[bool], None]) -> None:
        """Call ``handler(paused)`` (from paho's thread) for each ``on``/``off`` that arrives on
        ``<prefix>/<device_id>/set/monitoring`` (retained, so also once on every connect)."""
        self._on_monitoring = handler

    def publish_summary(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Send one spooled summary (QoS 1, retained); None while offline (it stays spooled)."""
        if not self._connected.is_set():
            return None
        return self._client.publish(self._summary, payload, qos=SUMMARY_QOS, retain=True)

    @property
    def connections(self) -> int:
        """How many times the client has connected: a summary in flight across a reconnect was
        forgotten by paho (``_discard_stale``) and is sent again."""
        return self._connections

    def publish(self, event: LabelEvent) -> bool:
        """Send one label (QoS from config, not retained); False if dropped while offline."""
        if not isinstance(event, LabelEvent):
            raise TypeError(f"publish() takes a LabelEvent, not {type(event).__name__}")
        if not self._connected.is_set():
            return self._drop()
        info = self._client.publish(
            self._emotion, label_payload(event), qos=self._config.qos, retain=False
        )
        if info.rc != 0:  # MQTT_ERR_NO_CONN or MQTT_ERR_QUEUE_SIZE: the connection just went
            return self._drop()
        with self._lock:
            self._published += 1
        logger.debug("published label %s", event.label)
        return True

    def publish_status(self, status: Mapping[str, StatusValue]) -> bool:
        """Send retained diagnostics; ValueError for keys outside ``STATUS_KEYS``.

        The last status is also re-sent after every reconnect. False if not sent now.
        """
        payload = status_payload(status)
        self._last_status = payload
        if not self._connected.is_set():
            return False
        info = self._client.publish(self._status, payload, qos=STATUS_QOS, retain=True)
        return info.rc == 0

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish retained ``offline``, wait up to ``timeout_s`` for it, disconnect, stop."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self._connected.is_set():
            self._send_offline(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def published(self) -> int:
        """Label events handed to the network (QoS 0) or to paho's in-flight window (QoS 1).

        A QoS-1 label still unacknowledged when the connection drops is not re-sent; it is then
        counted in ``dropped_offline`` as well.
        """
        return self._published

    @property
    def dropped_offline(self) -> int:
        """Label events dropped because the broker was not connected."""
        return self._dropped

    @property
    def fatal_error(self) -> BrokerAuthError | None:
        """Set when the broker refused the credentials, also after start(): exit on it."""
        return self._fatal

    # -- internals ------------------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if logger.isEnabledFor(logging.DEBUG):  # paho's own lines repeat ours at ERROR level
            client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        _log_in(client, self._config)
        client.will_set(self._availability, OFFLINE, qos=AVAILABILITY_QOS, retain=True)
        # paho types the delays as int; whole seconds, at least 1.
        client.reconnect_delay_set(
            min_delay=max(1, math.ceil(self._config.reconnect_min_s)),
            max_delay=max(1, math.ceil(self._config.reconnect_max_s)),
        )
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _drop(self) -> bool:
        with self._lock:
            self._dropped += 1
        return False

    def _send_offline(self, timeout_s: float) -> None:
        from paho.mqtt.enums import MQTTErrorCode

        info = self._client.publish(self._availability, OFFLINE, qos=AVAILABILITY_QOS, retain=True)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # unacknowledged labels fill the window
            self._discard_stale(self._client)
            info = self._client.publish(
                self._availability, OFFLINE, qos=AVAILABILITY_QOS, retain=True
            )
        try:
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError) as exc:
            logger.warning("could not publish 'offline' to %s: %s", self._where, exc)
            return
        if not info.is_published():
            logger.warning(
                "'offline' was not acknowledged by %s within %s s", self._where, timeout_s
            )

    def _discard_stale(self, client: mqtt.Client) -> None:
        """Forget unacknowledged QoS-1 messages instead of re-sending them (labels go stale)."""
        stale = client.drop_out_messages()
        # rc 0: publish() counted it as published; others (no connection) it already dropped
        labels = sum(1 for m in stale if m.topic == self._emotion and m.info.rc == 0)
        if labels:
            with self._lock:
                self._dropped += labels
            logger.debug("discarded %d unacknowledged labels", labels)

    def _auth_error(self, reason_code: ReasonCode) -> BrokerAuthError:
        user = self._config.username
        who = f"user {user!r}" if user is not None else "anonymous access"
        return BrokerAuthError(
            f"MQTT broker {self._where} refused {who} ({reason_code}); "
            "check mqtt.username and the password"
        )

    # -- paho callbacks (network thread; they must not raise) -----------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._on_refused(client, reason_code)
            return
        self._discard_stale(client)  # before paho re-sends them: availability must fit the window
        client.publish(self._availability, ONLINE, qos=AVAILABILITY_QOS, retain=True)
        if self._last_status is not None:
            client.publish(self._status, self._last_status, qos=STATUS_QOS, retain=True)
        client.subscribe(self._monitoring, qos=1)
        self._connections += 1
        self._connected.set()
        with self._lock:
            dropped = self._dropped - self._dropped_reported
            self._dropped_reported = self._dropped
        if dropped:
            logger.info(
                "connected to MQTT broker %s; %d labels dropped while offline", self._where, dropped
            )
        else:
            logger.info("connected to MQTT broker %s", self._where)
        self._first_attempt.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self._monitoring or self._on_monitoring is None:
            return
        paused = parse_command(bytes(message.payload))
        if paused is None:
            logger.warning("%s: ignored %r; send on or off", self._monitoring, message.payload[:16])
            return
        try:
            self._on_monitoring(paused)
        except EmotionEdgeError as exc:  # e.g. the state directory is not writable
            logger.error("%s", exc)

    def _on_refused(self, client: mqtt.Client, reason_code: ReasonCode) -> None:
        if reason_code.value in AUTH_REASON_CODES:
            self._fatal = self._auth_error(reason_code)
            client.disconnect()  # ends paho's reconnect loop: retrying cannot help
        else:
            logger.warning(
                "MQTT broker %s refused the connection (%s); retrying", self._where, reason_code
            )
        self._first_attempt.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._first_attempt.is_set():
            logger.debug("connecting to MQTT broker %s failed; retrying", self._where)
        self._first_attempt.set()  # start() logs the first failure

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping:
            logger.warning(
                "lost the connection to MQTT broker %s (%s); reconnecting, labels are "
                "dropped meanwhile",
                self._where,
                reason_code,
            )


if TYPE_CHECKING:

    def _conforms(publisher: MqttPublisher) -> Publisher:  # static check only
        return publisher


class LabelSubscriber:
    """Receives what a device publishes (``<prefix>/<device_id>/#``): for the demo and tools.

    ``on_message(topic, payload)`` runs on paho's network thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        device_id: str,
        on_message: Callable[[str, bytes], None],
    ) -> None:
        self._address = (host, port)
        self._topic = f"{prefix}/{device_id}/#"
        self._on_message = on_message
        self._subscribed = threading.Event()
        self._client: Any = None

    def start(self, timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.on_connect = lambda c, _u, _f, rc, _p: (
            None if rc.is_failure else c.subscribe(self._topic, qos=1)
        )
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = lambda _c, _u, msg: self._on_message(msg.topic, bytes(msg.payload))
        try:
            client.connect(*self._address, keepalive=30)
        except OSError as exc:
            host, port = self._address
            raise BrokerUnavailable(
                f"cannot reach the MQTT broker at {host}:{port}: {exc}"
            ) from exc
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise BrokerUnavailable(
                f"the broker at {self._address[0]} did not confirm a subscription"
            )

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def _log_in(client: mqtt.Client, config: MqttConfig) -> None:
    """User name, password and TLS (CA, client certificate) from the config, for any client."""
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls_ca_file is not None:
        client.tls_set_context(tls_context(config))  # ConfigError: files not usable


def send_monitoring(
    config: MqttConfig, device_id: str, paused: bool, timeout_s: float = 5.0
) -> None:
    """Publish the retained ``<prefix>/<device_id>/set/monitoring`` command (``off`` = paused)
    once and disconnect; BrokerUnavailable (one sentence) when it cannot be delivered."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    _log_in(client, config)
    topic = command_topic(config.topic_prefix, device_id, "monitoring")
    try:
        client.connect(config.host or "localhost", config.port, keepalive=10)
        client.loop_start()
        info = client.publish(topic, "off" if paused else "on", qos=1, retain=True)
        info.wait_for_publish(timeout_s)
        delivered = info.is_published()
    except (OSError, RuntimeError, ValueError) as exc:
        raise BrokerUnavailable(
            f"the switch is set on this unit, but the broker {config.host}:{config.port} did not "
            f"take the retained {topic} command ({exc}); send it again when it is back"
        ) from exc
    finally:
        client.loop_stop()
        client.disconnect()
    if not delivered:
        raise BrokerUnavailable(
            f"the switch is set on this unit, but the broker {config.host}:{config.port} did not "
            f"confirm the retained {topic} command within {timeout_s:g} s"
        )

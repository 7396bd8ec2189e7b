"""The broker: clients with the settings' TLS and SASL, topic admin, the input producer.

Shared by the worker (`tierstream run` checks and creates topics), the tools (replay,
capture, dlq replay, rebuild, bootstrap) and the dev harness. Public aiokafka only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from .preflight import TopicFacts
from .settings import Settings

#: Sends in flight before we wait for their acknowledgements (bounded memory, errors surface early).
CHUNK = 5_000

__all__ = [
    "BrokerUnreachable",
    "KafkaIOError",
    "Publisher",
    "broker_ssl_context",
    "client_kwargs",
    "describe_topics",
    "ensure_topics",
    "input_producer",
]


class KafkaIOError(RuntimeError):
    """Talking to the broker failed; the message is one line for the user."""


class BrokerUnreachable(KafkaIOError):
    def __init__(self, url: str) -> None:
        super().__init__(f"cannot reach the broker at {url}; start it or set TIERSTREAM_BROKER_URL")
        self.url = url


# --- clients ----------------------------------------------------------------------------------
def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka connection arguments (bootstrap, TLS, SASL) from the one settings object."""
    servers = settings.bootstrap_servers
    for server in servers or [""]:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaIOError(
                f"broker URL {settings.broker_url!r} is not like kafka://host:9092[;host:port]; "
                "fix --broker or TIERSTREAM_BROKER_URL"
            )
    kwargs: dict[str, Any] = {"bootstrap_servers": servers}
    protocol = settings.broker_security_protocol.upper()
    if protocol != "PLAINTEXT":
        kwargs["security_protocol"] = protocol
    context = broker_ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.broker_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.broker_sasl_username
        kwargs["sasl_plain_password"] = settings.broker_sasl_password.get_secret_value()
    return kwargs


_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def broker_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file, else the system's CAs); None without TLS."""
    protocol = settings.broker_security_protocol.upper()
    if protocol not in _PROTOCOLS:
        raise KafkaIOError(
            f"TIERSTREAM_BROKER_SECURITY_PROTOCOL is {settings.broker_security_protocol!r}; "
            f"use one of {', '.join(_PROTOCOLS)}"
        )
    if protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    ca_file = settings.broker_ca_file or None
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=ca_file)
        return context
    except (OSError, ssl.SSLError) as exc:
        raise KafkaIOError(
            f"TIERSTREAM_BROKER_CA_FILE {ca_file}: cannot load it as a PEM CA bundle "
            f"({getattr(exc, 'strerror', None) or exc}); point it at the CA that signed the brokers' certificates"
        ) from None


def _tls_handshakes(settings: Settings, context: ssl.SSLContext) -> Iterator[tuple[str, str | None]]:
    """(server, None if a TLS handshake with it worked, else why not) for each bootstrap server
    that accepts a TCP connection."""
    import socket

    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            raw = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            continue
        try:
            with raw, context.wrap_socket(raw, server_hostname=host):
                pass
        except ssl.SSLError as exc:
            yield server, str(exc.reason or exc)
        except OSError as exc:
            yield server, str(exc)
        else:
            yield server, None


def _tls_refusal(settings: Settings, context: ssl.SSLContext) -> str | None:
    """Why the TLS handshake with the first reachable bootstrap broker fails, or None."""
    for server, why in _tls_handshakes(settings, context):
        return None if why is None else f"the TLS handshake with {server} failed ({why})"
    return None


def _speaks_tls(settings: Settings) -> str | None:
    """The first reachable bootstrap server, if it completes a TLS handshake (certificate unchecked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for server, why in _tls_handshakes(settings, context):
        return server if why is None else None
    return None


def _as_settings(settings_or_bootstrap: Settings | str | Sequence[str]) -> Settings:
    if isinstance(settings_or_bootstrap, Settings):
        return settings_or_bootstrap
    if isinstance(settings_or_bootstrap, str):
        url = settings_or_bootstrap
    else:
        url = ";".join(settings_or_bootstrap)
    if not url.startswith("kafka://"):
        url = f"kafka://{url}"
    return Settings(broker_url=url)


async def start_client(client: Any, settings: Settings) -> None:
    """Start an aiokafka client; a broker that does not answer becomes BrokerUnreachable."""
    from aiokafka.errors import KafkaConnectionError

    try:
        await client.start()
    except KafkaConnectionError:
        await close_quietly(client)
        context = broker_ssl_context(settings)
        if context is None:
            tls_server = await asyncio.to_thread(_speaks_tls, settings)
            if tls_server is not None:
                raise KafkaIOError(
                    f"the broker at {tls_server} speaks TLS; set TIERSTREAM_BROKER_SECURITY_PROTOCOL=SSL "
                    "(or SASL_SSL) and TIERSTREAM_BROKER_CA_FILE"
                ) from None
        refusal = await asyncio.to_thread(_tls_refusal, settings, context) if context is not None else None
        if refusal is not None:
            raise KafkaIOError(
                f"{refusal}; check TIERSTREAM_BROKER_CA_FILE (the CA that signed the brokers' "
                "certificates) and that the URL names the brokers' TLS listener"
            ) from None
        raise BrokerUnreachable(settings.broker_url) from None


async def close_quietly(client: Any) -> None:
    close = getattr(client, "close", None) or client.stop
    # A consumer stopped before its background task first ran raises CancelledError
    # (aiokafka issue #647): let that task start.
    await asyncio.sleep(0)
    with contextlib.suppress(Exception):  # closing a client that never connected may fail
        await close()


async def ensure_topics(
    settings_or_bootstrap: Settings | str | Sequence[str], names: Sequence[str], partitions: int
) -> list[str]:
    """Create the missing topics with `partitions` partitions (replication 1); return those created.

    Run it before any client names a topic: Tansu auto-creates any topic a client
    asks about with 4 partitions, which breaks co-partitioning of the inputs.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    settings = _as_settings(settings_or_bootstrap)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return []
        response = await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
        created = []
        for entry in response.to_object()["topic_errors"]:
            code = entry["error_code"]
            if code == 0:
                created.append(entry["topic"])
            elif code != 36:  # TOPIC_ALREADY_EXISTS: someone else was quicker; fine
                raise KafkaIOError(
                    f"cannot create topic {entry['topic']!r}: error {code} "
                    f"({entry.get('error_message') or 'no message'})"
                )
        return created
    finally:
        await close_quietly(admin)


def producers_partitioner(name: str) -> Callable[[bytes | None, list[int], list[int]], int]:
    """An aiokafka partitioner that puts a key where the bank's producers put it."""
    import random

    from .engine.partitioner import partitioner

    pick = partitioner(name)

    def choose(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        ordered = sorted(all_partitions)
        return ordered[pick(key, len(ordered))]

    return choose


# --- publishing -------------------------------------------------------------------------------
class Publisher:
    """Sends records and keeps at most CHUNK of them unacknowledged (bounded memory, early errors)."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._in_flight: list[asyncio.Future[Any]] = []
        self.sent = 0

    async def send(
        self, topic: str, payload: bytes, key: bytes | None, timestamp_ms: int | None = None
    ) -> None:
        """Queue one record (full topic name); the producer's own errors propagate."""
        self._in_flight.append(await self._producer.send(topic, payload, key=key, timestamp_ms=timestamp_ms))
        self.sent += 1
        if len(self._in_flight) >= CHUNK:
            await self.drain()

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight)
            self._in_flight.clear()


@contextlib.asynccontextmanager
async def input_producer(settings: Settings, **options: Any) -> AsyncIterator[Publisher]:
    """A producer for the input topics, as a `Publisher`, for `replay` and `dlq replay`.

    Creates the input topics first (with the configured partitions, before any client
    names them). On leaving the block normally every record is acknowledged and
    flushed; broker trouble anywhere becomes a one-line KafkaIOError; the producer is
    always closed. `options` are AIOKafkaProducer's (linger_ms, acks, ...).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    await ensure_topics(settings, settings.input_topics, settings.partitions)
    producer = AIOKafkaProducer(
        **client_kwargs(settings),
        max_request_size=4 * 1024 * 1024,
        partitioner=producers_partitioner(settings.partitioner),
        **options,
    )
    await start_client(producer, settings)
    publisher = Publisher(producer)
    try:
        yield publisher
        await publisher.drain()
        await producer.flush()
    except KafkaError as exc:
        raise KafkaIOError(f"publishing to {settings.broker_url} failed: {exc}") from None
    finally:
        await close_quietly(producer)


# --- topics -----------------------------------------------------------------------------------
async def existing_partitions(admin: Any) -> dict[str, list[int]]:
    """Every topic's partition numbers, from all-topic metadata: naming topics in a metadata
    request would auto-create the missing ones (Tansu does, with 4 partitions)."""
    return {
        t["topic"]: [p["partition"] for p in t["partitions"]]
        for t in await admin.describe_topics(None)
        if t["error_code"] == 0
    }


async def describe_topics(settings: Settings, names: Sequence[str]) -> dict[str, TopicFacts]:
    """Partition count and cleanup policy of those of `names` that exist; creates none."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await start_client(admin, settings)
    try:
        existing = await existing_partitions(admin)
        found = [n for n in dict.fromkeys(names) if n in existing]
    except KafkaError as exc:
        await close_quietly(admin)
        raise KafkaIOError(f"reading topic metadata from {settings.broker_url} failed: {exc}") from None
    policies: dict[str, str] = {}
    # Every config of each topic: Tansu drops the connection when asked for named ones.
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in found]
    try:
        # Only warnings depend on the policy: a broker that will not tell leaves it unknown.
        with contextlib.suppress(KafkaError):
            for response in await admin.describe_configs(resources) if resources else ():
                for resource in response.to_object()["resources"]:
                    for entry in resource["config_entries"] if resource["error_code"] == 0 else ():
                        if entry["config_names"] == "cleanup.policy" and entry["config_value"]:
                            policies[resource["resource_name"]] = entry["config_value"]
    finally:
        await close_quietly(admin)
    return {n: TopicFacts(len(existing[n]), policies.get(n)) for n in found}

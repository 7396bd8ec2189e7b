"""TLS and SASL settings as the clients get them: aiokafka's arguments, Faust's credentials, Redis'."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from tierstream.broker import KafkaIOError, broker_ssl_context, client_kwargs
from tierstream.serving import redis_client, url_without_password
from tierstream.settings import Settings
from tierstream.worker.app import broker_credentials

SYSTEM_CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def test_plaintext_has_no_tls_and_no_credentials() -> None:
    settings = Settings()
    assert broker_ssl_context(settings) is None
    assert "security_protocol" not in client_kwargs(settings)
    assert broker_credentials(settings) is None


def test_ssl_gives_both_clients_one_verifying_context() -> None:
    settings = Settings(broker_security_protocol="SSL")
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_ssl_credentials() -> None:
    settings = Settings(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="tierstream",
        broker_sasl_password=SecretStr("pw"),
    )
    kwargs = client_kwargs(settings)
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "tierstream",
        "pw",
    )
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("tierstream", "pw")
    assert credentials.ssl_context is not None


def test_sasl_plaintext_has_no_tls() -> None:
    credentials = broker_credentials(Settings(broker_security_protocol="SASL_PLAINTEXT"))
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.ssl_context is None


@pytest.mark.parametrize("protocol", ["TLS", "SSL3", ""])
def test_unknown_protocol_is_one_line(protocol: str) -> None:
    with pytest.raises(KafkaIOError, match="TIERSTREAM_BROKER_SECURITY_PROTOCOL"):
        client_kwargs(Settings(broker_security_protocol=protocol))


def test_missing_or_bad_ca_file_is_one_line(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.pem", (tmp_path / "bad.pem")):
        if path.name == "bad.pem":
            path.write_text("not a certificate\n", "utf-8")
        with pytest.raises(KafkaIOError, match="TIERSTREAM_BROKER_CA_FILE") as info:
            broker_ssl_context(Settings(broker_security_protocol="SSL", broker_ca_file=str(path)))
        assert "\n" not in str(info.value)


def test_redis_client_takes_the_ca_only_for_rediss(tmp_path: Path) -> None:
    tls = redis_client(Settings(redis_url="rediss://h:6380/0", redis_ca_file=str(SYSTEM_CA)))
    assert tls.connection_pool.connection_kwargs["ssl_ca_certs"] == str(SYSTEM_CA)
    plain = redis_client(Settings(redis_url="redis://h:6379/0", redis_ca_file=str(SYSTEM_CA)))
    assert "ssl_ca_certs" not in plain.connection_pool.connection_kwargs
    with_password = redis_client(Settings(redis_password=SecretStr("pw")))
    assert with_password.connection_pool.connection_kwargs["password"] == "pw"


def test_redis_urls_in_messages_lose_their_password() -> None:
    assert url_without_password("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert url_without_password("rediss://user:pw@h:6380/1") == "rediss://h:6380/1"
    assert url_without_password("redis://h:6379/0") == "redis://h:6379/0"

"""The configuration of every Kafka client the project makes: the bootstrap servers plus how to
connect (TLS, SASL) from the settings, so no client is left on plaintext by mistake.

confluent-kafka clients take :func:`client_config`; faust's own (aiokafka) client takes
:func:`faust_credentials`. The security settings are read once per process from the environment
(``SESSIONS_KAFKA_SECURITY_PROTOCOL`` and the rest, ``streams.settings``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from functools import cache
from typing import Any

from streams.settings import Settings


@cache
def _security() -> dict[str, str]:
    return Settings.from_env().kafka_security


def client_config(bootstrap: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"bootstrap.servers": bootstrap, <security>, **options}`` for a confluent-kafka client."""
    return {"bootstrap.servers": bootstrap, **_security(), **(options or {})}


def faust_credentials(settings: Settings) -> Any:
    """faust's ``broker_credentials`` for the same settings (None for PLAINTEXT)."""
    import faust

    protocol = settings.kafka_security_protocol
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location or None)
        if settings.kafka_ssl_certificate_location:
            context.load_cert_chain(settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location or None)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None

"""The tests' HTTP clients: httpx, with one TLS context for the whole process.

httpx builds a new ``ssl.SSLContext`` for every ``Client`` and every module-level ``httpx.get()``,
reading and parsing the whole CA bundle: 48 ms of CPU each on the 2-core test machine (2026-12-02),
though no test speaks TLS. The fault suites poll three workers' ``/metrics`` several times a
second: 38% of their process's CPU went to those contexts (py-spy of ``test_fault_suite.py``).
Every client a test makes comes from here; ruff's banned-API rule (pyproject.toml) keeps it so.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def _tls() -> ssl.SSLContext:
    """What httpx would build for each client (the certifi bundle), built once."""
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.Client:
    """``httpx.Client(**options)`` sharing the process's TLS context."""
    return httpx.Client(verify=_tls(), **options)


def http_get(url: str, **options: Any) -> httpx.Response:
    """``httpx.get`` through a client sharing the process's TLS context."""
    with http_client() as client:
        return client.get(url, **options)


def http_post(url: str, **options: Any) -> httpx.Response:
    """``httpx.post`` through a client sharing the process's TLS context."""
    with http_client() as client:
        return client.post(url, **options)


# For annotations: the type of what http_client() returns.
HttpClient = httpx.Client

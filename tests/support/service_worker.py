"""One worker for the files that only need "a worker" (storefront, client conformance, security,
event path, fold property, OpenAPI fuzz): started once per test process (``service_worker`` in
tests/conftest.py), with the union of what those files configure.

The files take their keys and rules from here, so a key a file uses is one the worker knows.
Whatever they check must hold on a worker other files also write to: each test makes its own
sessions and never counts what it did not make.
"""

from __future__ import annotations

import uuid

from streams.config.settings import SCOPES
from streams.devkit.paths import SAMPLE_RULES_FILE

PARTITIONS = 6

# Names that the end-of-run leak scan recognises (``test-service-key-…``, ``test-only-…``, ``test-all-but-…``).
TRUSTED_KEY = "test-service-key-trusted-" + uuid.uuid4().hex  # events:trusted sessions:read
# One key with only each scope, one with every scope but it (tests/integration/test_security.py).
ONLY = {scope: f"test-only-{scope.replace(':', '-')}-{uuid.uuid4().hex}" for scope in SCOPES}
ALL_BUT = {scope: f"test-all-but-{scope.replace(':', '-')}-{uuid.uuid4().hex}" for scope in SCOPES}
OLD_SIGNING_KEY = "old-signing-key-" + uuid.uuid4().hex + uuid.uuid4().hex
NEW_SIGNING_KEY = "new-signing-key-" + uuid.uuid4().hex + uuid.uuid4().hex

# A second store beside the sample's "demo": one deployment, two accounts.
OUTLET_RULES = """
[accounts.outlet]
id = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
channel = "2"
currency_code = "USD"
currency_symbol = "$"
country_code = "USA"
culture_info = "en-US"
channel_privacy = "public"
"""
OUTLET_HOST = "outlet.example"


def rules_text() -> str:
    """The sample rules (what ``make run`` uses) plus the outlet account."""
    return SAMPLE_RULES_FILE.read_text() + OUTLET_RULES


def settings(rules_file: str) -> dict[str, str]:
    """The worker's SESSIONS_* settings besides the topic, group, port and data folder."""
    keys = [f"{TRUSTED_KEY}=events:trusted sessions:read"]
    keys += [f"{ONLY[scope]}={scope}" for scope in SCOPES]
    keys += [f"{ALL_BUT[scope]}={' '.join(sorted(SCOPES - {scope}))}" for scope in SCOPES]
    return {
        "SESSIONS_RULES_FILE": rules_file,
        "SESSIONS_SERVICE_KEYS": ";".join(keys),
        "SESSIONS_SESSION_SIGNING_KEYS": f"{NEW_SIGNING_KEY},{OLD_SIGNING_KEY}",
        "SESSIONS_HOST_ACCOUNTS": f"{OUTLET_HOST}=outlet",
    }

"""Settings: environment variables prefixed ``SESSIONS_``, defaults in code, read once, frozen."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from streams.config.values import (
    PREFIX,
    SCOPES,
    Limit,
    SettingsError,
    parse_cors_origins,
    parse_rate_limits,
    parse_service_keys,
    parse_value,
)

# The names read from here (the parsing of values lives in streams.config.values).
__all__ = ["KAFKA_PROTOCOLS", "PREFIX", "SASL_MECHANISMS", "SCOPES", "Settings", "SettingsError"]

_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ADVERTISED_URL = re.compile(r"^https?://[A-Za-z0-9._-]+:[0-9]{1,5}/?$")
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_COOKIE_DOMAIN = re.compile(r"^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    # How every Kafka client of the project connects (streams.kafka.clients): PLAINTEXT, SSL,
    # SASL_PLAINTEXT or SASL_SSL; SASL with PLAIN or SCRAM-SHA-256/512; TLS with a CA file (and a
    # client certificate and key for mutual TLS). The password is a secret, out of repr.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_ca_location: str = ""
    kafka_ssl_certificate_location: str = ""
    kafka_ssl_key_location: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # The URL other workers reach this one by (faust publishes it to the group, and requests for a
    # session are forwarded to its owner's URL): needed when the worker listens on 0.0.0.0 (a
    # container), e.g. "http://worker-1:8081". Empty = http://<web_host>:<web_port>.
    advertised_url: str = ""
    data_dir: Path = Path("./var")
    partitions: int = 12
    # Names that tests vary to get a fresh topic, consumer group and changelog per test.
    app_id: str = "session-engine"
    events_topic: str = "session-events"
    # Replicas of every topic the worker owns (streams/config/topics.py): 3 on a production cluster.
    # An existing topic with fewer stops the start (docs/cluster.md).
    replication_factor: int = 1
    # Replicas that must hold a record before an acks=all write is acknowledged, on every topic the
    # worker owns. 0: 2 when the replication factor is 3 or more (one broker may die and writes go
    # on; a second death refuses them rather than keep them on one disk), else 1.
    min_insync_replicas: int = 0
    # Warm copies of each partition on other workers (their changelog tailed into a store), so a
    # dead owner's partitions are served again without a full restore. 0: none.
    standby_replicas: int = 1
    # How long a write request waits for Kafka's acknowledgement before answering 503.
    produce_timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 500
    # One event as appended, and one session as stored: both stay far below Kafka's 1 MB message
    # limit, so the log and the changelog always take them.
    max_event_bytes: int = 64 * 1024
    max_session_bytes: int = 256 * 1024
    # An event stamped further ahead of the API's clock than this is refused (400 naming $.time).
    max_clock_skew_s: float = 300.0
    # The fold loop's RocksDB: one block cache shared by every partition's store, a memtable per
    # partition, and a ceiling on all memtables together (the worker's RSS budget rests on these).
    rocksdb_block_cache_bytes: int = 64 * 1024 * 1024
    rocksdb_write_buffer_bytes: int = 4 * 1024 * 1024
    rocksdb_memtables_bytes: int = 64 * 1024 * 1024
    # The fold loop takes up to this many records a call, waiting at most this long for them.
    fold_batch_max: int = 5000
    fold_batch_wait_ms: float = 5.0
    # Sessions kept in memory between batches (as their stored bytes; all partitions together): hot
    # sessions skip a RocksDB read.
    state_cache_sessions: int = 20_000
    # Keep each folded event's record in a local history store beside the partition's store, so a
    # timeline is read from disk, not fetched from Kafka by offset (docs/history.md). A cache:
    # off, or deleted, the timeline reads Kafka instead.
    history_store: bool = True
    # Testing only: "<point>:<n>" makes the fold loop SIGKILL its process (streams/fold/loop.py).
    fault_point: str = ""
    # Each changelog partition written in transactions, so a worker that lost its partitions
    # without knowing it (paused past the session timeout) cannot append to it (docs/engine.md,
    # "A worker that left the group"). Off only for a broker without transactions: unsafe then.
    changelog_transactions: bool = True
    log_level: str = "info"
    # "text" (faust's format) or "json" (one JSON object a line, with session and event ids).
    log_format: str = "text"
    # Static group membership: a worker restarted with the same id takes its partitions back at
    # once instead of waiting for the group to time the old member out. Empty = derived from the
    # app id, the data folder (a worker's identity is its state) and the web address.
    instance_id: str = ""
    # How long the group waits for a silent worker before giving its partitions to others.
    kafka_session_timeout_s: float = 10.0
    # The longest the fold loop's fetch waits at the broker for data.
    kafka_fetch_wait_ms: int = 50
    # The transformers' rules (TOML, see ops/rules.sample.toml); empty = no rules.
    rules_file: str = ""
    # A session's lifetime after its last event (and the storefront token's lifetime): an inactive
    # session expires (reads answer 404, its next event starts it afresh) and a sweep, every
    # ``session_sweep_every_s``, deletes it from the store and writes its changelog tombstone.
    session_ttl_s: int = 5 * 24 * 3600
    session_sweep_every_s: float = 60.0
    # A secret: kept out of repr (and so out of logs and tracebacks).
    session_signing_key: str = field(default="", repr=False)
    # Key rotation: several signing keys, newest first, separated by commas or spaces. The first
    # signs; every one verifies (a token names its key by ``kid``), so tokens signed with an older
    # key stay valid until they expire. Wins over ``session_signing_key``. Secrets, out of repr.
    session_signing_keys: str = field(default="", repr=False)
    session_cookie: str = "vtex_session"
    segment_cookie: str = "vtex_segment"
    # Cookie attributes: `Secure` (only over HTTPS; set it in production) and `Domain` (share the
    # cookies with subdomains, e.g. ".shop.example"); empty: the host that set them.
    cookie_secure: bool = False
    cookie_domain: str = ""
    # Storefront origins a browser may call the storefront routes from (CORS, with cookies):
    # comma-separated, e.g. "https://shop.example,https://www.shop.example". Empty: none.
    cors_origins: str = ""
    # Rate limits on the storefront routes, per worker: "address=<n>/s[:<burst>],session=<n>/s[:<burst>]"
    # (either or both). Empty: none. Behind proxies, trusted_proxy_hops says how many of the
    # X-Forwarded-For entries (from the right) were written by our own proxies.
    rate_limits: str = ""
    trusted_proxy_hops: int = 0
    # Storefront API: the account of a new session by the request's Host, for one deployment that
    # serves several stores: "<host>=<account>;<host2>=<account2>" (a host may carry its port).
    # An `an=<account>` query parameter wins over it; a host not listed gets the rules' default.
    host_accounts: str = ""
    # A regions service (VTEX's checkout regions API shape: GET <url>?country=&postalCode=|geoCoordinates=&sc=
    # answering [{"id": "<regionId>", ...}]) asked for checkout.regionId before a storefront change
    # is appended; its answer is recorded in the log (checkout.region_resolved). Empty: the rules'
    # [[regions]] table alone. Past regions_timeout_s, the table answers and nothing is recorded.
    regions_url: str = ""
    regions_timeout_s: float = 2.0
    # The identity cookie (VtexIdclientAutCookie_<account>): the issuer's public keys as a JWKS
    # file; a storefront write with a valid cookie appends the login it vouches for, one without
    # it (after such a login) the logout. Empty: the cookie is ignored (logins come from a
    # trusted service). identity_issuer: the `iss` the tokens must carry (empty: any).
    identity_jwks_file: str = ""
    identity_issuer: str = ""
    # Session apps over HTTP (streams/web/session_apps.py): a JSON manifest in the shape of VTEX's
    # vtex.session/configuration.json plus each app's url. Empty: none.
    session_apps_file: str = ""
    session_apps_timeout_s: float = 2.0
    # How long a write waits for the owning agent to fold its event before answering 503.
    write_wait_s: float = 5.0
    # How long a worker waits for the owner of a session to answer a request it forwarded there
    # before answering 503 with Retry-After itself: an owner that accepts connections but does not
    # answer (a paused process, a full event loop) must not hold storefront requests for minutes.
    forward_timeout_s: float = 5.0
    # Service API keys: "<key>=<scope> <scope>;<key2>=<scope>" (scopes: sessions:read,
    # sessions:history, sessions:erase, events:trusted, operations:read). Secrets: kept out of repr; parsed by
    # ``service_key_scopes``.
    service_keys: str = field(default="", repr=False)
    # The master key that wraps every session's data key (personal fields in the log are sealed
    # with those: streams.privacy): base64 of 32 bytes, several newest first (comma-separated) to
    # rotate. Empty: one is generated once under the data folder (``<data dir>/master.key``);
    # every worker of a deployment needs the same. A secret: out of repr.
    master_key: str = field(default="", repr=False)

    @property
    def min_insync(self) -> int:
        """``min_insync_replicas``, its default (0) resolved."""
        if self.min_insync_replicas:
            return self.min_insync_replicas
        return 2 if self.replication_factor >= 3 else 1

    @property
    def keys_topic(self) -> str:
        return f"{self.app_id}-session-keys"

    @property
    def dlq_topic(self) -> str:
        return f"{self.events_topic}.dlq"

    @property
    def changelog_topic(self) -> str:
        # Not faust's "<app>-sessions-changelog": this one's records carry source offsets and batch
        # markers, so a worker upgraded from the faust-table engine never reads the old records.
        return f"{self.app_id}-sessions-state-changelog"

    @property
    def fold_group_id(self) -> str:
        """The fold loop commits its offsets under this id (for lag tools); it never joins it."""
        return f"{self.app_id}-fold"

    @property
    def group_instance_id(self) -> str:
        if self.instance_id:
            return self.instance_id
        # The address is part of the identity: faust's assignor refuses a static member that comes
        # back announcing another URL (a pod with a new IP and the same volume would never join).
        identity = f"{self.data_dir.resolve()}|{self.web_url}"
        digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:12]
        return f"{self.app_id}-{digest}"

    @property
    def kafka_security(self) -> dict[str, str]:
        """librdkafka's connection settings for every client (empty for PLAINTEXT)."""
        config: dict[str, str] = {}
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return config
        config["security.protocol"] = protocol.lower()
        if protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password
        if protocol.endswith("SSL"):
            for key, value in (
                ("ssl.ca.location", self.kafka_ssl_ca_location),
                ("ssl.certificate.location", self.kafka_ssl_certificate_location),
                ("ssl.key.location", self.kafka_ssl_key_location),
            ):
                if value:
                    config[key] = value
        return config

    @property
    def cors_origin_set(self) -> frozenset[str]:
        return parse_cors_origins(self.cors_origins)

    @property
    def rate_limit_pair(self) -> tuple[Limit | None, Limit | None]:
        """(per client address, per session)."""
        return parse_rate_limits(self.rate_limits)

    @property
    def host_account_map(self) -> dict[str, str]:
        """``host_accounts`` parsed: lowercased host (with its port when given) -> account name."""
        mapped: dict[str, str] = {}
        for index, entry in enumerate(self.host_accounts.split(";")):
            if not entry.strip():
                continue
            host, equals, account = (part.strip() for part in entry.partition("="))
            if not equals or not host or not account or any(c.isspace() for c in host + account):
                raise SettingsError(
                    f"{PREFIX}HOST_ACCOUNTS entry {index}: expected '<host>=<account>', got {entry.strip()!r}"
                )
            if host.lower() in mapped:
                raise SettingsError(f"{PREFIX}HOST_ACCOUNTS entry {index}: host {host!r} is listed twice")
            mapped[host.lower()] = account
        return mapped

    @cached_property
    def service_key_scopes(self) -> Mapping[str, frozenset[str]]:
        """``service_keys`` parsed: key -> its scopes (what ``streams.web.service_auth`` checks)."""
        return parse_service_keys(self.service_keys)

    @property
    def session_signing_key_list(self) -> list[str]:
        """The configured signing keys, newest first: ``session_signing_keys`` split, else the
        single ``session_signing_key``, else none (one is generated under ``data_dir``)."""
        keys = [key for key in re.split(r"[\s,]+", self.session_signing_keys) if key]
        if keys:
            return keys
        return [self.session_signing_key] if self.session_signing_key else []

    @property
    def web_url(self) -> str:
        """How the other workers reach this one: ``advertised_url``, else the listening address."""
        return self.advertised_url or f"http://{self.web_host}:{self.web_port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = PREFIX + setting.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[setting.name] = parse_value(name, raw, setting.type)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.partitions < 1:
            raise SettingsError(f"{PREFIX}PARTITIONS must be at least 1, got {self.partitions}")
        if not 1 <= self.web_port <= 65535:
            raise SettingsError(f"{PREFIX}WEB_PORT must be a TCP port, got {self.web_port}")
        if self.advertised_url and not _ADVERTISED_URL.match(self.advertised_url):
            raise SettingsError(
                f"{PREFIX}ADVERTISED_URL must be http(s)://<host>:<port> with no path, got {self.advertised_url!r}"
            )
        if not _APP_ID.match(self.app_id):
            raise SettingsError(f"{PREFIX}APP_ID must match {_APP_ID.pattern}, got {self.app_id!r}")
        if not _APP_ID.match(self.events_topic):
            raise SettingsError(f"{PREFIX}EVENTS_TOPIC must match {_APP_ID.pattern}, got {self.events_topic!r}")
        if self.replication_factor < 1:
            raise SettingsError(f"{PREFIX}REPLICATION_FACTOR must be at least 1, got {self.replication_factor}")
        if not 0 <= self.min_insync_replicas <= self.replication_factor:
            raise SettingsError(
                f"{PREFIX}MIN_INSYNC_REPLICAS must be between 1 and {PREFIX}REPLICATION_FACTOR "
                f"({self.replication_factor}), or 0 for the default, got {self.min_insync_replicas}"
            )
        if self.produce_timeout_s <= 0:
            raise SettingsError(f"{PREFIX}PRODUCE_TIMEOUT_S must be positive")
        if self.write_wait_s <= 0:
            raise SettingsError(f"{PREFIX}WRITE_WAIT_S must be positive")
        if self.max_clock_skew_s < 0:
            raise SettingsError(f"{PREFIX}MAX_CLOCK_SKEW_S must not be negative")
        if self.regions_url and not self.regions_url.startswith(("http://", "https://")):
            raise SettingsError(f"{PREFIX}REGIONS_URL must be an http(s):// URL, got {self.regions_url!r}")
        if self.session_apps_timeout_s <= 0:
            raise SettingsError(f"{PREFIX}SESSION_APPS_TIMEOUT_S must be positive")
        if self.regions_timeout_s <= 0:
            raise SettingsError(f"{PREFIX}REGIONS_TIMEOUT_S must be positive")
        if self.forward_timeout_s <= 0:
            raise SettingsError(f"{PREFIX}FORWARD_TIMEOUT_S must be positive")
        if self.session_ttl_s < 60:
            raise SettingsError(f"{PREFIX}SESSION_TTL_S must be at least 60 seconds")
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT must be 'text' or 'json', got {self.log_format!r}")
        if self.session_signing_key and len(self.session_signing_key) < 32:
            raise SettingsError(f"{PREFIX}SESSION_SIGNING_KEY must be at least 32 characters")
        for index, key in enumerate(self.session_signing_key_list):
            if len(key) < 32:
                raise SettingsError(f"{PREFIX}SESSION_SIGNING_KEYS entry {index} must be at least 32 characters")
        if self.kafka_security_protocol not in KAFKA_PROTOCOLS:
            raise SettingsError(
                f"{PREFIX}KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}, "
                f"got {self.kafka_security_protocol!r}"
            )
        if self.kafka_security_protocol.startswith("SASL"):
            if self.kafka_sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(f"{PREFIX}KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}")
            if not self.kafka_sasl_username or not self.kafka_sasl_password:
                raise SettingsError(f"{PREFIX}KAFKA_SASL_USERNAME and {PREFIX}KAFKA_SASL_PASSWORD are needed for SASL")
        if self.cookie_domain and not _COOKIE_DOMAIN.match(self.cookie_domain):
            raise SettingsError(f"{PREFIX}COOKIE_DOMAIN must be a host name such as .shop.example")
        if self.trusted_proxy_hops < 0:
            raise SettingsError(f"{PREFIX}TRUSTED_PROXY_HOPS must be 0 or more")
        self.cors_origin_set  # noqa: B018 - parsed once here so a bad entry stops the start
        self.rate_limit_pair  # noqa: B018 - likewise
        self.host_account_map  # noqa: B018 - likewise
        self.service_key_scopes  # noqa: B018 - likewise
        if self.master_key:
            from streams.privacy.cipher import MasterKeyError, MasterKeys

            try:
                MasterKeys(self.master_key)
            except MasterKeyError as exc:
                raise SettingsError(f"{PREFIX}MASTER_KEY: {exc}") from None

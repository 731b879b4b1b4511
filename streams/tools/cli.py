"""``sessionctl``: run the worker, manage the local broker."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from streams.config.settings import Settings, SettingsError

if TYPE_CHECKING:
    from streams.privacy.cipher import MasterKeys
    from streams.tools.export.events import RecordFilter
    from streams.tools.progress import LogProgress, RichProgress

cli = typer.Typer(help="Session engine: an event-sourced Session Manager on Apache Kafka.", no_args_is_help=True)
broker_cli = typer.Typer(
    help="The local Kafka broker, or a local cluster of several (streams/devkit/broker.py).", no_args_is_help=True
)
cli.add_typer(broker_cli, name="broker")
dlq_cli = typer.Typer(help="The dead-letter topic: records the worker could not fold.", no_args_is_help=True)
cli.add_typer(dlq_cli, name="dlq")
keys_cli = typer.Typer(
    help="The sessions' data keys (personal fields in the log; docs/security.md).", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def worker() -> None:
    """Create the topics, then fold events and serve HTTP until SIGTERM/Ctrl-C."""
    from projections.rules import RulesError
    from streams.config.rules_file import read_rules_file
    from streams.config.topics import worker_topics
    from streams.control.app import create_engine
    from streams.control.generations import CURRENT, control_topic, read_records
    from streams.control.worker import QuietWorker, tune_process
    from streams.fold.data_dir import DataDirError, claim
    from streams.kafka.admin import TopicMismatch, ensure_topics

    settings = _settings()
    try:
        claim(settings.data_dir)
    except DataDirError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        ensure_topics(settings.kafka_bootstrap, worker_topics(settings))
        # Read before the first assignment, so the worker serves the current generation from the start.
        current = read_records(settings.kafka_bootstrap, control_topic(settings.app_id)).get(CURRENT)
    except TopicMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable or refuses
        typer.echo(f"error: cannot set up topics on {settings.kafka_bootstrap}: {exc}", err=True)
        raise typer.Exit(3) from None
    try:
        engine = create_engine(settings, current)
        if current is not None and current.rules != read_rules_file(settings.rules_file):
            # Said here: the worker's logging is not set up yet.
            typer.echo(
                f"warning: table generation {current.number} was built with other rules than SESSIONS_RULES_FILE "
                f"({settings.rules_file or 'none'}): serving it with its own rules (see `sessionctl rebuild --rules`)",
                err=True,
            )
    except (RulesError, SettingsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    tune_process()
    QuietWorker(
        engine.app,
        loglevel=settings.log_level,
        quiet=True,
        json_logs=settings.log_format == "json",
        secrets=[settings.session_signing_key, *settings.service_key_scopes],
    ).execute_from_commandline()


@dlq_cli.command("list")
def dlq_list(limit: int = 100, values: bool = False) -> None:
    """Print dead letters (oldest first): where they came from and why they failed."""
    from streams.kafka.dead_letters import list_letters

    settings = _settings()
    letters = list_letters(settings.kafka_bootstrap, settings.dlq_topic, limit)
    for letter in letters:
        key = (letter.key or b"").decode(errors="replace")
        typer.echo(f"{settings.dlq_topic}[{letter.partition}]@{letter.offset}  from {letter.origin}  key={key}")
        typer.echo(f"    reason: {letter.reason}")
        if values:
            typer.echo(f"    value: {(letter.value or b'')[:500].decode(errors='replace')}")
    typer.echo(f"{len(letters)} dead letter(s) in {settings.dlq_topic}", err=True)


@dlq_cli.command("redrive")
def dlq_redrive(dry_run: bool = False) -> None:
    """Append the dead letters not re-driven yet to the event topic again (after a fix).

    A progress bar on a terminal (letters read of those planned, appended, rate, ETA), plain
    lines otherwise."""
    import sys

    from streams.kafka.dead_letters import redrive
    from streams.tools.progress import LogProgress, RichProgress

    settings = _settings()
    label = "dlq redrive"
    reporter = RichProgress(label) if sys.stderr.isatty() else LogProgress(label=label, verb="re-driven")
    with reporter:
        letters = redrive(
            settings.kafka_bootstrap,
            settings.dlq_topic,
            settings.events_topic,
            f"{settings.app_id}-dlq-redrive",
            dry_run,
            progress=reporter,
        )
    verb = "would re-drive" if dry_run else "re-drove"
    typer.echo(f"{verb} {len(letters)} dead letter(s) from {settings.dlq_topic} to {settings.events_topic}")


@keys_cli.command("rewrap")
def keys_rewrap() -> None:
    """Wrap every data key again with the newest master key (the first of SESSIONS_MASTER_KEY), so
    an older master key can be dropped from the setting once the topic has compacted."""
    from streams.privacy.cipher import MasterKeyError, master_keys
    from streams.privacy.keyring import KeysUnavailable
    from streams.privacy.rotation import rewrap

    settings = _settings()
    try:
        master = master_keys(settings.master_key, settings.data_dir)
        summary = rewrap(settings.kafka_bootstrap, settings.keys_topic, master)
    except MasterKeyError as exc:
        typer.echo(f"error: SESSIONS_MASTER_KEY: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeysUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"{summary.keys} data keys: {summary.rewrapped} wrapped again with the newest master key, "
        f"{summary.unreadable} wrapped with no configured master key (left as they are), "
        f"{summary.erased_meanwhile} erased meanwhile (their tombstones written again)"
    )
    if summary.unreadable:
        raise typer.Exit(1)


@cli.command("export")
def export(
    from_: Annotated[str, typer.Option("--from", help="start of the range, included (RFC 3339 with a timezone)")],
    to: Annotated[str, typer.Option("--to", help="end of the range, excluded (RFC 3339 with a timezone)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the file to write")],
    format_: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    types: Annotated[list[str] | None, typer.Option("--type", help="only events of this type (repeatable)")] = None,
    sessions: Annotated[
        list[str] | None,
        typer.Option("--session", help="only this session's events, or document with --sessions (repeatable)"),
    ] = None,
    slack: Annotated[
        str, typer.Option("--slack", help="read this much before --from and after --to (5m, 300s)")
    ] = "5m",
    sessions_: Annotated[
        bool,
        typer.Option(
            "--sessions",
            help="write session documents as of --to instead of events: only the sessions active in the range "
            "(at least one event whose time is in [--from, --to)), each folded from its first event up to --to",
        ),
    ] = False,
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules", help="with --sessions: the transformers' rules file (default SESSIONS_RULES_FILE)"),
    ] = None,
    master_key: Annotated[
        bool,
        typer.Option(
            "--master-key",
            help="open personal fields with the deployment's master key: SESSIONS_MASTER_KEY, else "
            "<data dir>/master.key (default: they are written redacted)",
        ),
    ] = False,
) -> None:
    """Write the events whose `time` is in [--from, --to) to a JSON Lines or Parquet file.

    Where to start reading each partition is found with Kafka's time index (records are stamped
    with their event's time), --slack before --from; a partition is read until its records are
    stamped --slack past --to, or to its end.

    With --sessions: the session documents as of --to (as the service API serves them) of the
    sessions active in [--from, --to), i.e. with at least one event whose time is in the range. Each
    is the fold of its events whose time is before --to, in log order, with the worker's rules and
    lifetime (SESSIONS_SESSION_TTL_S): an erased session has no document, one restarted after its
    lifetime is written from the restart; every partition is read from its beginning.

    Personal fields (e-mail, user id, names, phone, document) are sealed in the log: they are
    written redacted (a "redacted" stand-in) unless --master-key is given, which opens them (a value
    of an erased session then reads as an "erased" stand-in)."""
    import sys

    from streams.history.window import ExportError, check_range, parse_duration, parse_instant
    from streams.tools.export.events import RecordFilter, check_types, export_to_file, personal_fields
    from streams.tools.export.writers import FORMATS
    from streams.tools.progress import LogProgress, RichProgress

    try:
        start, end = parse_instant(from_, "--from"), parse_instant(to, "--to")
        check_range(start, end)
        if format_ not in FORMATS:
            raise ExportError("--format", f"{format_!r} is not one of {', '.join(FORMATS)}")
        window = parse_duration(slack, "--slack")
        selection = RecordFilter(start, end, check_types(types or ()), frozenset(sessions or ()))
        if sessions_ and types:
            raise ExportError("--type", "cannot be used with --sessions: types filter events, not sessions")
        if rules_file is not None and not sessions_:
            raise ExportError("--rules", "only applies with --sessions")
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    master = _export_master_keys(settings) if master_key else None
    if master is None:
        typer.echo("personal fields: redacted ([redacted]); --master-key opens them", err=True)
    else:
        typer.echo("personal fields: opened with the master key (erased sessions read [erased])", err=True)
    reporter = RichProgress() if sys.stderr.isatty() else LogProgress()
    if sessions_:
        _export_sessions(settings, selection, format_, output, window, rules_file, reporter, master)
        return
    try:
        with personal_fields(settings.kafka_bootstrap, settings.keys_topic, master) as unseal, reporter:
            selection.unseal = unseal
            summary = export_to_file(
                settings.kafka_bootstrap,
                settings.events_topic,
                selection,
                format_,
                output,
                window,
                reporter,
            )
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable, the topic missing, the file unwritable
        typer.echo(f"error: export failed: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"exported {summary.written} events to {output} ({format_}): {summary.read} records read from "
        f"{summary.partitions_read} of {summary.partitions} partitions, {summary.skipped} skipped (not events), "
        f"{summary.seconds:.1f}s"
    )


def _export_sessions(
    settings: Settings,
    selection: RecordFilter,
    format_: str,
    output: Path,
    window: timedelta,
    rules_file: Path | None,
    reporter: RichProgress | LogProgress,
    master: MasterKeys | None,
) -> None:
    from projections.rules import RulesError
    from streams.config.rules_file import load_rules
    from streams.tools.export.events import personal_fields
    from streams.tools.export.sessions import export_sessions_to_file

    try:
        rules = load_rules(str(rules_file) if rules_file is not None else settings.rules_file)
    except RulesError as exc:
        typer.echo(f"error: --rules: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with personal_fields(settings.kafka_bootstrap, settings.keys_topic, master) as unseal, reporter:
            summary = export_sessions_to_file(
                settings.kafka_bootstrap,
                settings.events_topic,
                selection.start,
                selection.end,
                rules,
                format_,
                output,
                selection.sessions,
                window,
                settings.max_session_bytes,
                reporter,
                unseal,
                # The worker's lifetime (``streams.control.app.fold_config``): the export restarts the
                # sessions it restarted.
                lifetime_ms=settings.session_ttl_s * 1000,
                max_skew_ms=int(settings.max_clock_skew_s * 1000),
            )
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable, the topic missing, the file unwritable
        typer.echo(f"error: export failed: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"exported {summary.sessions} sessions to {output} ({format_}): {summary.folded} events folded, "
        f"{summary.read} records read from {summary.partitions_read} of {summary.partitions} partitions, "
        f"{summary.skipped} skipped (not events), {summary.refused} refused, {summary.seconds:.1f}s"
    )


def _export_master_keys(settings: Settings) -> MasterKeys:
    """``export --master-key``: SESSIONS_MASTER_KEY, else the data folder's master.key (never one
    generated here: it would open nothing)."""
    from streams.privacy.cipher import MasterKeyError, master_keys

    if not settings.master_key and not (settings.data_dir / "master.key").is_file():
        typer.echo(
            f"error: --master-key: SESSIONS_MASTER_KEY is not set and {settings.data_dir / 'master.key'} does not "
            "exist (set SESSIONS_MASTER_KEY, or SESSIONS_DATA_DIR to the worker's data folder)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        return master_keys(settings.master_key, settings.data_dir)
    except (MasterKeyError, OSError) as exc:
        typer.echo(f"error: --master-key: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command("rebuild")
def rebuild(
    rules: Annotated[
        Path | None, typer.Option("--rules", help="fold with this rules file (default: the current generation's)")
    ] = None,
    generation: Annotated[
        int | None, typer.Option("--generation", help="the generation number to build (default: current + 1)")
    ] = None,
    switch: Annotated[
        bool, typer.Option("--switch", help="fold up to the live end, then make the workers serve the new generation")
    ] = False,
    max_lag: Annotated[
        int, typer.Option("--max-lag", help="with --switch: events the new generation may still lag behind")
    ] = 1000,
) -> None:
    """Fold the whole event log into a new table generation while the current one keeps serving.

    The new generation has its own changelog topic, store folder and source offsets. Without
    --switch the rebuild stops at the log's end as it was when it started (Ctrl-C stops it early;
    running it again goes on). With --switch (alone, or with the options of a rebuild) it folds
    until it has caught up with the live end, then makes it the generation every worker serves."""
    import signal
    import sys
    import threading

    from projections.rules import RulesError
    from streams.config.rules_file import read_rules_file
    from streams.control.generations import changelog_topic
    from streams.control.worker import tune_process
    from streams.tools import rebuild as rebuilding
    from streams.tools.progress import LogProgress, RichProgress

    # Every option is checked before anything touches Kafka: a bad one creates no topic.
    try:
        rules_text = read_rules_file(str(rules)) if rules is not None else None
    except RulesError as exc:
        typer.echo(f"error: --rules: {exc}", err=True)
        raise typer.Exit(2) from None
    if generation is not None and generation < 2:
        typer.echo(f"error: --generation must be 2 or more (1 is the first build), got {generation}", err=True)
        raise typer.Exit(2)
    if max_lag < 0:
        typer.echo(f"error: --max-lag must be 0 or more, got {max_lag}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    try:
        if switch and rules_text is None and generation is None:
            chosen = rebuilding.pending_generation(settings)
        else:
            chosen = rebuilding.plan(settings, rules_text, generation)
        rebuilding.prepare(settings, chosen)
    except (rebuilding.RebuildError, RulesError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable or refuses
        typer.echo(f"error: cannot reach Kafka at {settings.kafka_bootstrap}: {exc}", err=True)
        raise typer.Exit(3) from None
    n = chosen.target.number
    typer.echo(
        f"{'going on with' if chosen.resumed else 'starting'} the rebuild of generation {n} into "
        f"{changelog_topic(settings.changelog_topic, n)}; "
        f"the workers serve generation {chosen.current.number} meanwhile",
        err=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    tune_process()  # the worker's GC, GIL and malloc settings: the same fold rate
    reporter = RichProgress("rebuild") if sys.stderr.isatty() else LogProgress(label="rebuild", verb="folded")
    try:
        with reporter:
            summary = rebuilding.rebuild(
                settings, chosen.target, reporter, until_live=switch, max_lag=max_lag, stop=stop
            )
    except Exception as exc:  # noqa: BLE001 - the broker went away, a store cannot be opened
        typer.echo(f"error: the rebuild failed: {exc} (run the same command again to go on)", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"generation {n}: {summary.sessions} sessions, {summary.events} events folded "
        f"({summary.records} records read) in {summary.seconds:.1f}s, {summary.events_per_s:,.0f} events/s"
    )
    if not summary.complete:
        typer.echo("stopped before the end: run the same command again to go on", err=True)
        raise typer.Exit(130)
    if not switch:
        typer.echo(f"run `sessionctl rebuild --switch` to make the workers serve generation {n}", err=True)
        return
    try:
        lags = rebuilding.switch(settings, chosen.target, max_lag)
    except rebuilding.RebuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"switched: the workers serve generation {n} now ({sum(lags.values())} events left for them to fold)")


@cli.command("simulate")
def simulate(
    url: Annotated[str, typer.Option("--url", help="the deployment's base URL")] = "http://127.0.0.1:8080",
    rate: Annotated[float, typer.Option("--rate", help="new visitors (sessions) per second", min=0.1)] = 20.0,
    duration: Annotated[float, typer.Option("--duration", help="seconds of arrivals", min=0.1)] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="the same seed sends the same traffic")] = 1,
    service_key: Annotated[
        str | None,
        typer.Option(
            "--service-key",
            envvar="SESSIONS_SERVICE_KEY",
            help="a key with events:trusted: some visitors then log in (a trusted auth.logged_in event)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
) -> None:
    """Storefront traffic through the public HTTP API, as browsers send it (docs: streams/tools/simulate.py).

    Visitors arrive at --rate per second for --duration seconds, each with its own cookie jar:
    they land (POST /api/sessions, some through a campaign link), view pages and follow campaigns
    (POST /api/events), set a postal code (PATCH /api/sessions), add to the cart, and with
    --service-key some log in. A live display on a terminal (requests/s, errors by status, latency
    percentiles), plain lines otherwise; a summary at the end. Exit 1 when any request failed."""
    import json

    from streams.tools.simulate import SimulationConfig, run, summary_text

    config = SimulationConfig(url=url.rstrip("/"), rate=rate, duration=duration, seed=seed, service_key=service_key)
    summary = run(config, as_json)
    typer.echo(json.dumps(summary) if as_json else summary_text(summary))
    if summary["errors"]:
        raise typer.Exit(1)


def _broker() -> ModuleType:
    # Imported on use: the worker commands do not need it.
    from streams.devkit import broker

    return broker


@broker_cli.command("start")
def broker_start(
    data_dir: Path = Path("var/kafka"),
    port: Annotated[int, typer.Option(help="the (first) node's port; 0 picks free ports")] = 9092,
    nodes: Annotated[
        int | None, typer.Option(help="a local cluster of this many nodes (default: one broker; docs/cluster.md)")
    ] = None,
    node: Annotated[int | None, typer.Option(help="start only this node of the local cluster")] = None,
) -> None:
    """Start the local broker or cluster (a no-op for what already runs) and print its bootstrap address."""
    broker = _broker()
    try:
        typer.echo(broker.run_start(data_dir, port, nodes, node, 90.0))
    except broker.BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@broker_cli.command("stop")
def broker_stop(
    data_dir: Path = Path("var/kafka"),
    node: Annotated[int | None, typer.Option(help="stop only this node of the local cluster (SIGTERM)")] = None,
) -> None:
    """Stop the local broker of DATA_DIR (every node of a cluster)."""
    broker = _broker()
    try:
        if node is None:
            broker.stop(data_dir)
        else:
            broker.stop_node(data_dir, node)
    except broker.BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@broker_cli.command("kill")
def broker_kill(
    node: Annotated[int, typer.Option(help="the node of the local cluster to SIGKILL")],
    data_dir: Path = Path("var/kafka"),
) -> None:
    """SIGKILL one node of the local cluster, as a machine dies (start it again with --node)."""
    broker = _broker()
    try:
        pid = broker.kill_node(data_dir, node)
    except broker.BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"node {node} " + (f"killed (pid {pid})" if pid else "was not running"), err=True)


@broker_cli.command("status")
def broker_status(data_dir: Path = Path("var/kafka")) -> None:
    """Print the bootstrap address of the running broker (of a cluster: its answering nodes, and
    each node's state on stderr); exit 1 when none runs."""
    raise typer.Exit(_broker().print_status(data_dir))


def _history_key(settings: Settings, key: str | None) -> str:
    """--key, else the first key of SESSIONS_SERVICE_KEYS (or of the file `make run` generated
    under the data folder) that has sessions:history."""
    if key:
        return key
    from streams.config.settings import parse_service_keys

    configured: Mapping[str, frozenset[str]] = settings.service_key_scopes
    generated = settings.data_dir / "service-keys"
    if not configured and generated.exists():
        configured = parse_service_keys(generated.read_text().strip())
    for candidate, scopes in configured.items():
        if "sessions:history" in scopes:
            return candidate
    typer.echo("error: --key: no service key with sessions:history (pass --key or set SESSIONS_SERVICE_KEYS)", err=True)
    raise typer.Exit(2)


@cli.command("history")
def history(
    session_id: Annotated[str, typer.Argument(help="the session's id")],
    at: Annotated[
        str | None, typer.Option("--at", help="print the session as it was at this instant (RFC 3339)")
    ] = None,
    after: Annotated[str | None, typer.Option("--after", help="print the session right after this event id")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="a worker's base URL (default: SESSIONS_WEB_HOST:SESSIONS_WEB_PORT)")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="a service key with sessions:history (default: from the settings)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's JSON instead of text")] = False,
    personal: Annotated[
        bool, typer.Option("--personal", help="print personal fields (e-mail, names, ...) in clear, not redacted")
    ] = False,
) -> None:
    """A session's timeline (time, type, interesting fields, what each event changed), or with
    --at/--after its state at that point; asked of a running worker (any one: it routes).
    Personal fields are printed as [redacted] unless --personal."""
    import httpx
    import orjson

    from projections.rules import RulesError
    from streams.config.rules_file import load_rules
    from streams.tools.printing import document_lines, redact_document, redact_events, timeline_lines

    settings = _settings()
    try:
        personal_public = load_rules(settings.rules_file).personal_public_keys
    except RulesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    base = url or settings.web_url
    headers = {"Authorization": f"Bearer {_history_key(settings, key)}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
            if at is not None or after is not None:
                params = {"at": at} if at is not None else {}
                params |= {"after": after} if after is not None else {}
                answer = client.get(f"/api/v1/sessions/{session_id}", params=params)
                _check_answer(answer)
                document = answer.json() if personal else redact_document(answer.json(), personal_public)
                lines = (
                    [orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()]
                    if as_json
                    else document_lines(document)
                )
            else:
                events: list[dict[str, object]] = []
                cursor: str | None = None
                while True:
                    answer = client.get(
                        f"/api/v1/sessions/{session_id}/events",
                        params={"limit": "1000", **({"cursor": cursor} if cursor else {})},
                    )
                    _check_answer(answer)
                    page = answer.json()
                    events.extend(page["events"])
                    cursor = page["next"]
                    if cursor is None:
                        break
                if not personal:
                    events = redact_events(events, personal_public)
                if as_json:
                    lines = [orjson.dumps({"events": events}, option=orjson.OPT_INDENT_2).decode()]
                else:
                    lines = [f"session {session_id}: {len(events)} events", *timeline_lines(events)]
    except httpx.HTTPError as exc:
        typer.echo(f"error: {base} does not answer: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo("\n".join(lines))


def _check_answer(answer: object) -> None:
    import httpx

    assert isinstance(answer, httpx.Response)
    if answer.status_code == 200:
        return
    try:
        message = answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = answer.text[:200]
    typer.echo(f"error: {answer.status_code}: {message}", err=True)
    raise typer.Exit(1 if answer.status_code == 404 else 2 if answer.status_code < 500 else 3)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

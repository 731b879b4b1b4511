"""``sessionctl``: run the worker, manage the local broker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from streams.settings import Settings, SettingsError

if TYPE_CHECKING:
    from streams.history.export import LogProgress, RecordFilter, RichProgress

cli = typer.Typer(help="Session engine: an event-sourced Session Manager on Apache Kafka.", no_args_is_help=True)
broker_cli = typer.Typer(help="The local single-node Kafka broker (streams/kafka/broker.py).", no_args_is_help=True)
cli.add_typer(broker_cli, name="broker")
dlq_cli = typer.Typer(help="The dead-letter topic: records the worker could not fold.", no_args_is_help=True)
cli.add_typer(dlq_cli, name="dlq")


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
    from streams.app import create_engine
    from streams.kafka.admin import TopicMismatch, TopicSpec, ensure_topics
    from streams.worker import QuietWorker, tune_process

    settings = _settings()
    forever = {"retention.ms": "-1", "retention.bytes": "-1"}
    try:
        ensure_topics(
            settings.kafka_bootstrap,
            [
                TopicSpec(settings.events_topic, settings.partitions, settings.replication_factor, forever),
                TopicSpec(settings.dlq_topic, settings.partitions, settings.replication_factor, forever),
                # Partition for partition with the event topic: the fold loop writes partition p of
                # both. Compacted: only each session's latest state (and the latest marker) matter.
                TopicSpec(
                    settings.changelog_topic,
                    settings.partitions,
                    settings.replication_factor,
                    {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
                ),
            ],
        )
    except TopicMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable or refuses
        typer.echo(f"error: cannot set up topics on {settings.kafka_bootstrap}: {exc}", err=True)
        raise typer.Exit(3) from None
    try:
        engine = create_engine(settings)
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
    """Append the dead letters not re-driven yet to the event topic again (after a fix)."""
    from streams.kafka.dead_letters import redrive

    settings = _settings()
    letters = redrive(
        settings.kafka_bootstrap, settings.dlq_topic, settings.events_topic, f"{settings.app_id}-dlq-redrive", dry_run
    )
    verb = "would re-drive" if dry_run else "re-drove"
    typer.echo(f"{verb} {len(letters)} dead letter(s) from {settings.dlq_topic} to {settings.events_topic}")


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
) -> None:
    """Write the events whose `time` is in [--from, --to) to a JSON Lines or Parquet file.

    Where to start reading each partition is found with Kafka's time index (records are stamped
    with their event's time), --slack before --from; a partition is read until its records are
    stamped --slack past --to, or to its end.

    With --sessions: the session documents as of --to (as the service API serves them) of the
    sessions active in [--from, --to), i.e. with at least one event whose time is in the range. Each
    is the fold of its events whose time is before --to, in log order, with the worker's rules; every
    partition is read from its beginning."""
    import sys

    from streams.history.export import (
        FORMATS,
        ExportError,
        LogProgress,
        RecordFilter,
        RichProgress,
        check_range,
        check_types,
        export_to_file,
        parse_duration,
        parse_instant,
    )

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
    reporter = RichProgress() if sys.stderr.isatty() else LogProgress()
    if sessions_:
        _export_sessions(settings, selection, format_, output, window, rules_file, reporter)
        return
    try:
        with reporter:
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
) -> None:
    from projections.rules import RulesError
    from streams.history.sessions import export_sessions_to_file
    from streams.rules_file import load_rules

    try:
        rules = load_rules(str(rules_file) if rules_file is not None else settings.rules_file)
    except RulesError as exc:
        typer.echo(f"error: --rules: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with reporter:
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
            )
    except Exception as exc:  # noqa: BLE001 - the broker is unreachable, the topic missing, the file unwritable
        typer.echo(f"error: export failed: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"exported {summary.sessions} sessions to {output} ({format_}): {summary.folded} events folded, "
        f"{summary.read} records read from {summary.partitions_read} of {summary.partitions} partitions, "
        f"{summary.skipped} skipped (not events), {summary.refused} refused, {summary.seconds:.1f}s"
    )


def _broker() -> ModuleType:
    # Imported on use: the worker commands do not need it.
    from streams.kafka import broker

    return broker


@broker_cli.command("start")
def broker_start(data_dir: Path = Path("var/kafka"), port: int = 9092) -> None:
    """Start the local broker (a no-op when it already runs) and print its bootstrap address."""
    broker = _broker()
    try:
        typer.echo(broker.start(data_dir, port or broker.free_port()))
    except broker.BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@broker_cli.command("stop")
def broker_stop(data_dir: Path = Path("var/kafka")) -> None:
    """Stop the local broker of DATA_DIR."""
    _broker().stop(data_dir)


@broker_cli.command("status")
def broker_status(data_dir: Path = Path("var/kafka")) -> None:
    """Print the bootstrap address of the running broker; exit 1 when none runs."""
    bootstrap = _broker().status(data_dir)
    if bootstrap is None:
        typer.echo("Kafka is not running", err=True)
        raise typer.Exit(1)
    typer.echo(bootstrap)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

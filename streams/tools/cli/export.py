"""``sessionctl export``: events in a time range, or the session documents as of its end, to a file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streams.config.settings import Settings
from streams.tools.cli.common import settings_or_exit

if TYPE_CHECKING:
    from streams.privacy.cipher import MasterKeys
    from streams.tools.export.events import RecordFilter
    from streams.tools.progress import LogProgress, RichProgress


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
    settings = settings_or_exit()
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

"""``sessionctl worker``: create the topics, then run the worker (faust's Worker over the wired app)."""

from __future__ import annotations

import typer

from streams.config.settings import SettingsError
from streams.tools.cli.common import settings_or_exit


def worker() -> None:
    """Create the topics, then fold events and serve HTTP until SIGTERM/Ctrl-C."""
    from projections.rules import RulesError
    from streams.config.rules_file import read_rules_file
    from streams.config.topics import control_topic, worker_topics
    from streams.control.app import create_engine
    from streams.control.generations import CURRENT, read_records
    from streams.control.worker import QuietWorker, tune_process
    from streams.fold.data_dir import DataDirError, claim
    from streams.kafka.admin import TopicMismatch, ensure_topics

    settings = settings_or_exit()
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

"""``sessionctl dlq``: list the dead-letter topic, re-drive it after a fix."""

from __future__ import annotations

import typer

from streams.tools.cli.common import settings_or_exit

dlq_cli = typer.Typer(help="The dead-letter topic: records the worker could not fold.", no_args_is_help=True)


@dlq_cli.command("list")
def dlq_list(limit: int = 100, values: bool = False) -> None:
    """Print dead letters (oldest first): where they came from and why they failed."""
    from streams.kafka.dead_letters import list_letters

    settings = settings_or_exit()
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

    settings = settings_or_exit()
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

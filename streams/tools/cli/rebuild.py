"""``sessionctl rebuild``: fold the log into a new table generation, then switch the workers to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.tools.cli.common import settings_or_exit


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
    from streams.config.topics import changelog_topic
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
    settings = settings_or_exit()
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

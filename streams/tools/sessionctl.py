"""``sessionctl``: run the worker, manage the local broker; one command group per module of ``streams/tools/cli/``."""

from __future__ import annotations

import sys

import typer

from streams.tools.cli import broker, dead_letters, export, history, keys, rebuild, simulate, worker

cli = typer.Typer(help="Session engine: an event-sourced Session Manager on Apache Kafka.", no_args_is_help=True)
cli.add_typer(broker.broker_cli, name="broker")
cli.add_typer(dead_letters.dlq_cli, name="dlq")
cli.add_typer(keys.keys_cli, name="keys")
cli.command()(worker.worker)
cli.command("export")(export.export)
cli.command("rebuild")(rebuild.rebuild)
cli.command("simulate")(simulate.simulate)
cli.command("history")(history.history)


def main() -> None:
    if sys.argv[1:] == ["worker"]:
        # The worker takes no options, so it starts without the parser: typer's parameter handling
        # imports pydantic, about 0.15 s of CPU at every start (a deployment's or a test run's
        # many workers). `sessionctl worker --help` still goes through the parser.
        try:
            worker.worker()
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        return
    cli()


if __name__ == "__main__":
    main()

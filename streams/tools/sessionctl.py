"""``sessionctl``: run the worker, manage the local broker; one command group per module of ``streams/tools/cli/``."""

from __future__ import annotations

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
    cli()


if __name__ == "__main__":
    main()

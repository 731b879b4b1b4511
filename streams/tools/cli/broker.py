"""``sessionctl broker``: the local Kafka broker or cluster of the development kit."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

broker_cli = typer.Typer(
    help="The local Kafka broker, or a local cluster of several (streams/devkit/broker.py).", no_args_is_help=True
)


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

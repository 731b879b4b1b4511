"""``sessionctl simulate``: storefront traffic through the public HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer


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

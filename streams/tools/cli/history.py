"""``sessionctl history``: a session's timeline, or its state at an instant, through the service API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from streams.config.settings import Settings
from streams.tools.cli.common import check_answer, settings_or_exit


def _history_key(settings: Settings, key: str | None) -> str:
    """--key, else the first key of SESSIONS_SERVICE_KEYS (or of the file `make run` generated
    under the data folder) that has sessions:history."""
    if key:
        return key
    from streams.config.values import parse_service_keys

    configured: Mapping[str, frozenset[str]] = settings.service_key_scopes
    generated = settings.data_dir / "service-keys"
    if not configured and generated.exists():
        configured = parse_service_keys(generated.read_text().strip())
    for candidate, scopes in configured.items():
        if "sessions:history" in scopes:
            return candidate
    typer.echo("error: --key: no service key with sessions:history (pass --key or set SESSIONS_SERVICE_KEYS)", err=True)
    raise typer.Exit(2)


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

    settings = settings_or_exit()
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
                check_answer(answer)
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
                    check_answer(answer)
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

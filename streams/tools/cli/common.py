"""What every ``sessionctl`` command shares: the settings (or exit 2), and a service API answer checked."""

from __future__ import annotations

import typer

from streams.config.settings import Settings, SettingsError


def settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def check_answer(answer: object) -> None:
    import httpx

    assert isinstance(answer, httpx.Response)
    if answer.status_code == 200:
        return
    try:
        message = answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = answer.text[:200]
    typer.echo(f"error: {answer.status_code}: {message}", err=True)
    raise typer.Exit(1 if answer.status_code == 404 else 2 if answer.status_code < 500 else 3)

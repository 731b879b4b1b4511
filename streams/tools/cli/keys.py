"""``sessionctl keys``: the sessions' data keys (rewrap under the newest master key)."""

from __future__ import annotations

import typer

from streams.tools.cli.common import settings_or_exit

keys_cli = typer.Typer(
    help="The sessions' data keys (personal fields in the log; docs/security.md).", no_args_is_help=True
)


@keys_cli.command("rewrap")
def keys_rewrap() -> None:
    """Wrap every data key again with the newest master key (the first of SESSIONS_MASTER_KEY), so
    an older master key can be dropped from the setting once the topic has compacted."""
    from streams.privacy.cipher import MasterKeyError, master_keys
    from streams.privacy.keyring import KeysUnavailable
    from streams.privacy.rotation import rewrap

    settings = settings_or_exit()
    try:
        master = master_keys(settings.master_key, settings.data_dir)
        summary = rewrap(settings.kafka_bootstrap, settings.keys_topic, master)
    except MasterKeyError as exc:
        typer.echo(f"error: SESSIONS_MASTER_KEY: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeysUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(
        f"{summary.keys} data keys: {summary.rewrapped} wrapped again with the newest master key, "
        f"{summary.unreadable} wrapped with no configured master key (left as they are), "
        f"{summary.erased_meanwhile} erased meanwhile (their tombstones written again)"
    )
    if summary.unreadable:
        raise typer.Exit(1)

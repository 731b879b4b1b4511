"""``sessionctl`` in this process, with typer's ``CliRunner``: for the checks of an option's
validation or usage, which end before anything touches Kafka (no interpreter start-up per case).

What the command printed is written to a log of ``tests.support.cli`` (registered in
``SPAWNED_LOGS``), so the end-of-run leak scan reads it as it reads a subprocess's output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from click.testing import Result
from typer.testing import CliRunner

from streams.tools.sessionctl import cli
from tests.support.cli import log_file, shown


def sessionctl_in_process(*args: str, env: Mapping[str, str] | None = None, expect: int | None = None) -> Result:
    """``sessionctl *args`` in-process (``env`` overrides the environment meanwhile); with
    ``expect``, assert its exit code. ``result.stdout`` and ``result.stderr`` are kept apart."""
    overrides: dict[str, str | None] | None = None
    if env is not None:  # the settings it reads are those of ``env`` alone, as in a subprocess given ``env``
        overrides = {name: None for name in os.environ if name.startswith("SESSIONS_") and name not in env}
        overrides.update(env)
    result = CliRunner().invoke(cli, list(args), env=overrides, catch_exceptions=False)
    log_file(args).write_text(f"$ {shown(args)}\n{result.stdout}\n{result.stderr}")
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}:\n{result.output}"
    return result

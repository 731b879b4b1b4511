"""The command groups of ``sessionctl``, one module each (``streams.tools.sessionctl`` puts them together)."""

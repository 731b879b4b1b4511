"""Observability: metrics, live activity, log records, the process's memory."""

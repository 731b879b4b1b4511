"""Old name of ``streams.devkit``: only the modules that files in flight elsewhere still import."""

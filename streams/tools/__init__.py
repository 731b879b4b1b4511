"""Tools for people, run apart from the worker (``sessionctl``): never imported by the worker's rooms."""

"""The control plane: faust-streaming wiring (the app, its private APIs), the worker process, table generations."""

"""An example session app, in the style of VTEX's B2B ``vtex.storefront-permissions``: from the
shopper's e-mail, their organization's sales channel, collections filter and price tables.

Its manifest entry is the ``vtex.session/configuration.json`` of vtex-apps/storefront-permissions
(commit 09eb551) plus its URL (:func:`manifest`). It answers VTEX's transform call,
``POST /_v/storefront-permissions/session/transform``: the body holds every declared input in
session shape, the answer the outputs (``""`` clears one). The integration tests run it in a
thread; ``python -m streams.devkit.session_app --port 9000`` runs it alone, and
``SESSIONS_SESSION_APPS_FILE`` pointing at the manifest it prints plugs it into a worker.
"""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

NAME = "storefront-permissions"
# vtex-apps/storefront-permissions, vtex.session/configuration.json (commit 09eb551).
CONFIGURATION: dict[str, Any] = {
    "input": {
        "authentication": ["storeUserEmail"],
        "checkout": ["orderFormId"],
        "impersonate": ["storeUserEmail", "storeUserId"],
        "public": ["impersonate"],
    },
    "output": {
        "public": ["facets", "sc"],
        NAME: ["storeUserId", "storeUserEmail", "organization", "costcenter", "priceTables", "collections", "userId"],
    },
}
# Who belongs to which organization (a real app asks its B2B back office).
ORGANIZATIONS: dict[str, dict[str, str]] = {
    "buyer@example.com": {"organization": "org-acme", "costcenter": "cc-1", "sc": "2", "collections": "138"},
}


def transform(inputs: dict[str, Any]) -> dict[str, Any]:
    """The app's answer to one transform call."""
    email = ((inputs.get("authentication") or {}).get("storeUserEmail") or {}).get("value")
    member = ORGANIZATIONS.get(str(email).lower()) if email else None
    if member is None:  # not a B2B buyer (or logged out): clear what a login set here
        return {NAME: {key: {"value": ""} for key in ("storeUserEmail", "organization", "costcenter")}}
    return {
        "public": {"sc": {"value": member["sc"]}, "facets": {"value": f"productClusterIds={member['collections']};"}},
        NAME: {
            "storeUserEmail": {"value": email},
            "organization": {"value": member["organization"]},
            "costcenter": {"value": member["costcenter"]},
        },
    }


class SessionApp:
    """The app on a loopback port; ``requests`` keeps every body it was sent, ``extra`` outputs are
    added to each answer (a test of outputs the app did not declare), ``failing`` answers 500."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.failing = False
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != f"/_v/{NAME}/session/transform":
                    self.send_response(404)
                    self.end_headers()
                    return
                app.requests.append(body)
                if app.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                outputs = transform(body)
                for namespace, keys in app.extra.items():
                    outputs[namespace] = {**outputs.get(namespace, {}), **keys}
                answer = orjson.dumps(outputs)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-cache, no-store")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SessionApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()

    def manifest(self) -> dict[str, Any]:
        return {NAME: {"url": self.url, **CONFIGURATION}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    app = SessionApp(parser.parse_args().port)
    print(orjson.dumps(app.manifest(), option=orjson.OPT_INDENT_2).decode())
    app.server.serve_forever()


if __name__ == "__main__":
    main()

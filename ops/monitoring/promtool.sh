#!/usr/bin/env bash
# Prints the path of a promtool (Prometheus' rule checker), for tests/unit/test_alert_rules.py: the one
# on PATH, else the one of Debian's prometheus package, unpacked once into ops/.cache/ with
# `apt-get download` + `dpkg-deb -x` (no install: no service started, nothing outside the checkout).
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
found=$(ls -d ops/.cache/promtool-*/usr/bin/promtool 2>/dev/null | tail -1 || true)
if [ -z "$found" ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    chown _apt "$scratch" 2>/dev/null || chmod 777 "$scratch"  # apt downloads as its own user
    (cd "$scratch" && { apt-get download -q prometheus >&2 || { apt-get update -q >&2 && apt-get download -q prometheus >&2; }; })
    deb=$(ls "$scratch"/prometheus_*.deb)
    version=$(dpkg-deb -f "$deb" Version)
    mkdir -p "ops/.cache/promtool-$version"
    dpkg-deb -x "$deb" "$scratch/unpacked"
    mkdir -p "ops/.cache/promtool-$version/usr/bin"
    cp "$scratch/unpacked/usr/bin/promtool" "ops/.cache/promtool-$version/usr/bin/promtool"
    found="ops/.cache/promtool-$version/usr/bin/promtool"
fi
echo "$PWD/$found"

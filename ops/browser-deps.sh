#!/usr/bin/env bash
# What the browser tests (tests/browser) need besides the venv, installed when missing:
# Debian's chromium (apt-get, as root) and axe-core from npm, kept in ops/.cache/axe-core-<version>.
# Prints the path of axe.min.js. The explorer page itself never loads anything from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION="${AXE_VERSION:-4.14.1}"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
    else
        echo "error: chromium is missing: run 'apt-get install chromium' as root" >&2
        exit 2
    fi
fi

cache="ops/.cache/axe-core-$AXE_VERSION"
if [ ! -s "$cache/axe.min.js" ]; then
    mkdir -p "$cache"
    scratch=$(mktemp -d)
    (cd "$scratch" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar xzf axe-core-*.tgz)
    cp "$scratch/package/axe.min.js" "$cache/axe.min.js.tmp" && mv "$cache/axe.min.js.tmp" "$cache/axe.min.js"
    rm -rf "$scratch"
fi
echo "$PWD/$cache/axe.min.js"

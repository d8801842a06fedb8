#!/usr/bin/env bash
# Fetch axe-core (npm package `axe-core`, pinned below), the accessibility engine that
# tests/test_accessibility.py runs inside the pages through Playwright.
# Only its one browser bundle is needed, so it is unpacked from the package tarball
# rather than installed. Safe to run again: it does nothing when the pinned version is
# already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.14.1
DEST=tests/.axe
if [ -f "$DEST/axe.min.js" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "The accessibility tests need npm (Node.js) to fetch axe-core@$VERSION." >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "axe-core@$VERSION" >/dev/null
tar -xzf "$tmp/axe-core-$VERSION.tgz" -C "$tmp" package/axe.min.js
mkdir -p "$DEST"
mv "$tmp/package/axe.min.js" "$DEST/axe.min.js"
echo "$VERSION" > "$DEST/VERSION"

#!/usr/bin/env bash
# Fetch the caniemail data (npm package `caniemail`, pinned below) that
# tests/test_email_quality.py checks the email's HTML and CSS against.
# Only the package's data file is needed, so it is unpacked from the package tarball
# rather than installed with its JavaScript dependencies. Safe to run again: it does
# nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.0.2
DEST=tests/.caniemail
if [ -f "$DEST/caniemail.json" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "The email client-support test needs npm (Node.js) to fetch caniemail@$VERSION." >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "caniemail@$VERSION" >/dev/null
tar -xzf "$tmp/caniemail-$VERSION.tgz" -C "$tmp" package/data/caniemail.json
mkdir -p "$DEST"
mv "$tmp/package/data/caniemail.json" "$DEST/caniemail.json"
echo "$VERSION" > "$DEST/VERSION"

#!/usr/bin/env bash
# Install the system packages some tests need (Debian/Ubuntu), only those missing.
# Each entry is "command-to-check:debian-package".
set -euo pipefail
NEEDED=(
    "spamassassin:spamassassin"
    "chromium:chromium"
)
missing=()
for entry in "${NEEDED[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
done
# SpamAssassin's DKIM plugin needs Mail::DKIM, which spamassassin only recommends.
perl -MMail::DKIM -e 1 >/dev/null 2>&1 || missing+=("libmail-dkim-perl")
# Debian keeps PostgreSQL's server programs off PATH, under /usr/lib/postgresql/N/bin.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=("postgresql")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "The tests need these system packages: ${missing[*]}" >&2
    echo "Install them (e.g. sudo apt-get install ${missing[*]}) and run again." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

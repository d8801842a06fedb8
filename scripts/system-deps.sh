#!/usr/bin/env bash
# Install the system packages some tests need (Debian/Ubuntu), only those missing.
# Each entry is "command-to-check:debian-package".
set -euo pipefail
NEEDED=(
    "spamassassin:spamassassin"
    "chromium:chromium"
    # The bounce tests: a real MTA that bounces, and a real IMAP/POP3 server.
    "postfix:postfix"
)
missing=()
for entry in "${NEEDED[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
done
# SpamAssassin's DKIM plugin needs Mail::DKIM, which spamassassin only recommends.
perl -MMail::DKIM -e 1 >/dev/null 2>&1 || missing+=("libmail-dkim-perl")
# Dovecot's IMAP and POP3 servers are packages of their own beside the dovecot command.
for protocol in imap pop3; do
    [ -x "/usr/lib/dovecot/$protocol" ] || missing+=("dovecot-${protocol}d")
done
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
# Postfix's package asks how mail is to be sent: the tests configure their own instance.
if command -v debconf-set-selections >/dev/null 2>&1; then
    printf '%s\n' "postfix postfix/main_mailer_type select No configuration" \
        "postfix postfix/mailname string localhost" | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

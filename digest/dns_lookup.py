"""The DNS questions of the sender checks: TXT, address and MX look-ups with a timeout,
through DIGEST_DNS_SERVERS or the system's resolver, and the domains they are asked for."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.utils import parseaddr

import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver

from digest.config import Settings
from digest.errors import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Answer:
    """The TXT strings found at a name, or why there are none."""

    name: str
    texts: tuple[str, ...] = ()
    # Set when the name has no TXT record: NXDOMAIN or an empty answer.
    missing: str = ""
    # Set when the DNS could not answer: a timeout, SERVFAIL, a truncated answer.
    failed: str = ""


class Dns:
    """One resolver for a check, with the timeout of DIGEST_DNS_TIMEOUT."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.dns_timeout
        if settings.dns_servers:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [_nameserver(s) for s in settings.dns_servers]
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.timeout = self.resolver.lifetime = self.timeout

    def txt(self, name: str) -> Answer:
        """Return the TXT records at name, each one string (its pieces joined)."""
        try:
            answer = self.resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as err:
            missing = "no such name" if isinstance(err, dns.resolver.NXDOMAIN) else "no TXT record"
            return Answer(name, missing=missing)
        except dns.exception.DNSException as err:
            return Answer(name, failed=self.why(err))
        texts = tuple(
            b"".join(r.strings).decode("utf-8", "replace")
            for r in answer
            if r.rdtype == dns.rdatatype.TXT
        )
        return Answer(name, texts)

    def addresses(self, name: str, kinds: tuple[str, ...] = ("A", "AAAA")) -> list[Address]:
        """Return name's addresses; [] when it has none. A DNS failure is raised."""
        found: list[Address] = []
        for kind in kinds:
            try:
                answer = self.resolver.resolve(name, kind, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            found += [ipaddress.ip_address(r.to_text()) for r in answer]
        return found

    def mx(self, name: str) -> list[str]:
        """Return the mail exchangers of name, best first; [] when it has none."""
        try:
            answer = self.resolver.resolve(name, "MX", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        ranked = sorted(answer, key=lambda r: r.preference)
        return [r.exchange.to_text().rstrip(".") for r in ranked]

    def why(self, err: dns.exception.DNSException) -> str:
        """Say in a few words why the DNS gave no answer."""
        if isinstance(err, dns.exception.Timeout):
            return f"no answer within {self.timeout:g} s (DIGEST_DNS_TIMEOUT)"
        if isinstance(err, dns.resolver.NoNameservers):
            tried = err.kwargs.get("errors", [])
            # Each is (server, over TCP, port, exception, answer): TCP is only tried
            # after a UDP answer came truncated.
            if any(e[1] for e in tried):
                return "the answer is too long for UDP and TCP to the server failed"
            errors = [str(e[3]) for e in tried]
            if any("SERVFAIL" in e for e in errors) or not errors:
                return "the DNS server failed (SERVFAIL)"
            return f"the DNS server failed ({errors[0]})"
        return f"DNS error: {err}"


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """Read host, host:port or [v6]:port."""
    host, port = entry, 53
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", entry)
    if bracketed:
        host, port = bracketed.group(1), int(bracketed.group(2) or 53)
    elif entry.count(":") == 1:
        host, _, number = entry.partition(":")
        port = int(number) if number.isdigit() else 53
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"DIGEST_DNS_SERVERS={entry!r}: give a server's IP address, with :PORT if not 53"
        ) from None
    return dns.nameserver.Do53Nameserver(host, port)


def envelope_domain(settings: Settings) -> str:
    """Return the domain of the envelope sender (MAIL FROM), whose SPF receivers check:
    that of DIGEST_BOUNCE_ADDRESS when each message carries its own return path."""
    address = settings.bounce_address or parseaddr(settings.sender)[1]
    return address.rpartition("@")[2].lower()


def from_domain(settings: Settings) -> str:
    """Return the domain of the From header, whose DMARC policy receivers apply."""
    return parseaddr(settings.sender)[1].rpartition("@")[2].lower()


def short_record(record: str) -> str:
    """Return a DKIM record with its long p= value shortened, for one readable line."""
    return re.sub(
        r"(p=\s*)([A-Za-z0-9+/=\s]{24,})", lambda m: f"{m[1]}{m[2][:12]}…{m[2][-6:]}", record
    )


def shown(texts: tuple[str, ...]) -> str:
    return " and ".join(f'"{short_record(t)}"' for t in texts)

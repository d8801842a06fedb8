"""SPF (RFC 7208) as a receiver evaluates it: does the envelope sender's domain
authorise the address mail leaves from?"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver

from digest.check import Finding, Level, is_local
from digest.config import Settings
from digest.dns_lookup import Address, Dns, envelope_domain, shown

# RFC 7208, 4.6.4: at most 10 terms that cause DNS look-ups, and 2 that find nothing.
MAX_LOOKUPS = 10
MAX_VOID = 2
# RFC 7208, 3.4: an SPF record longer than this may not fit a UDP answer.
SPF_LONGEST = 450


class SpfError(Exception):
    """The evaluation ends: result is permerror, temperror or unknown."""

    def __init__(self, result: str, why: str) -> None:
        super().__init__(why)
        self.result = result


@dataclass
class Spf:
    """check_host() of RFC 7208 for one address, with ip4, ip6, a, mx, include,
    exists, redirect and all; ptr never matches (RFC 7208 asks not to use it) and
    macros are not expanded (the evaluation says it cannot tell)."""

    dns: Dns
    lookups: int = 0
    voids: int = 0
    trail: list[str] = field(default_factory=list)

    def record(self, domain: str) -> str | None:
        """Return domain's one SPF record, None when it has none."""
        answer = self.dns.txt(domain)
        if answer.failed:
            raise SpfError("temperror", f"{domain}: {answer.failed}")
        spf = [t for t in answer.texts if re.match(r"v=spf1(\s|$)", t, re.IGNORECASE)]
        if len(spf) > 1:
            raise SpfError("permerror", f"{domain} has {len(spf)} SPF records: {shown(tuple(spf))}")
        return spf[0] if spf else None

    def check(self, ip: Address, domain: str) -> str:
        """Return pass, fail, softfail, neutral or none for ip sending as domain."""
        record = self.record(domain)
        if record is None:
            return "none"
        terms = record.split()[1:]
        redirect = None
        for term in terms:
            if "%{" in term:
                raise SpfError("unknown", f"{term}: macros are not evaluated here")
            name, eq, value = term.partition("=")
            if eq and re.fullmatch(r"[A-Za-z][\w.-]*", name):
                if name.lower() == "redirect":
                    redirect = value
                continue
            qualifier = term[0] if term[0] in "+-~?" else "+"
            mechanism = term.lstrip("+-~?")
            if self.matches(ip, domain, mechanism):
                self.trail.append(f"{domain}: {term}")
                return {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}[qualifier]
        if redirect is not None:
            self.count()
            result = self.check(ip, redirect)
            if result == "none":
                raise SpfError("permerror", f"redirect={redirect} has no SPF record")
            return result
        return "neutral"

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError("permerror", f"more than {MAX_LOOKUPS} DNS look-ups (RFC 7208, 4.6.4)")

    def void(self, found: bool) -> None:
        if not found:
            self.voids += 1
            if self.voids > MAX_VOID:
                raise SpfError("permerror", f"more than {MAX_VOID} look-ups found nothing")

    def matches(self, ip: Address, domain: str, mechanism: str) -> bool:
        kind, _, rest = mechanism.partition(":")
        kind = kind.lower()
        if "/" in kind:
            kind, _, cidr = kind.partition("/")
            rest = f"{rest}/{cidr}" if rest else f"/{cidr}"
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(rest, strict=False)
            except ValueError:
                raise SpfError("permerror", f"{domain}: {mechanism} is not a network") from None
            return ip.version == network.version and ip in network
        if kind not in ("a", "mx", "include", "exists", "ptr"):
            raise SpfError("permerror", f"{domain}: unknown mechanism {mechanism}")
        self.count()
        target, four, six = _target_and_cidr(rest or domain, domain)
        try:
            if kind == "include":
                result = self.check(ip, target)
                if result == "none":
                    raise SpfError("permerror", f"include:{target} has no SPF record")
                return result == "pass"
            if kind == "ptr":
                return False
            if kind == "exists":
                found = self.dns.addresses(target, ("A",))
                self.void(bool(found))
                return bool(found)
            hosts = [target] if kind == "a" else self.dns.mx(target)[:10]
            if kind == "mx":
                self.void(bool(hosts))
            for host in hosts:
                addresses = self.dns.addresses(host)
                if kind == "a":
                    self.void(bool(addresses))
                for address in addresses:
                    width = four if address.version == 4 else six
                    if ip.version == address.version and ip in ipaddress.ip_network(
                        f"{address}/{width}", strict=False
                    ):
                        return True
            return False
        except dns.exception.DNSException as err:
            raise SpfError("temperror", f"{target}: {self.dns.why(err)}") from None


def _target_and_cidr(rest: str, domain: str) -> tuple[str, int, int]:
    """Split 'example.org/24//64' into the domain and the IPv4 and IPv6 prefix lengths."""
    target, _, cidrs = rest.partition("/")
    four, _, six = cidrs.partition("//") if not cidrs.startswith("/") else ("", "", cidrs[1:])
    return target or domain, int(four or 32), int(six or 128)


def check_spf(settings: Settings, resolver: Dns) -> Finding:
    """Does the SPF record of the envelope domain authorise the address of SMTP_HOST?"""
    domain = envelope_domain(settings)
    host = settings.smtp_host
    spf = Spf(resolver)
    try:
        record = spf.record(domain)
    except SpfError as err:
        return Finding("warning" if err.result == "temperror" else "error", "SPF", str(err))
    if record is None:
        return Finding(
            "error",
            "SPF",
            f"{domain} has no SPF record (v=spf1 …): receivers junk or refuse its mail;"
            " `digest check --records` prints one",
        )
    said = f'{domain}: "{record}"'
    if len(record.encode()) > SPF_LONGEST:
        return Finding(
            "warning",
            "SPF",
            f"{said}: {len(record.encode())} bytes, over the {SPF_LONGEST} an SPF record"
            " should keep to (RFC 7208, 3.4)",
        )
    if re.search(r"(^|\s)\+?all\b", record):
        return Finding("warning", "SPF", f"{said}: +all lets every address send as {domain}")
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if (literal is None and is_local(host)) or (literal is not None and literal.is_loopback):
        return Finding(
            "ok",
            "SPF",
            f"{said}; SMTP_HOST {host} is this machine: whether the record covers the"
            " address mail leaves it from cannot be told from here",
        )
    try:
        addresses = [literal] if literal is not None else resolver.addresses(host)
    except dns.exception.DNSException as err:
        return Finding("warning", "SPF", f"{said}; the address of {host}: {resolver.why(err)}")
    if not addresses:
        return Finding("warning", "SPF", f"{said}; SMTP_HOST {host} has no address in DNS")
    for address in addresses:
        try:
            result = spf.check(address, domain)
        except SpfError as err:
            level: Level = "error" if err.result == "permerror" else "warning"
            return Finding(level, "SPF", f"{said}: {err.result}: {err}")
        if result != "pass":
            return Finding(
                "warning",
                "SPF",
                f"{said} gives {result} for {host} ({address}): unless the relay sends from"
                f" other addresses it lists, or with its own envelope domain rather than"
                f" {domain}, add it to the record",
            )
    return Finding(
        "ok",
        "SPF",
        f"{said} authorises {host} ({', '.join(map(str, addresses))}) for the envelope"
        f" sender's domain {domain}",
    )

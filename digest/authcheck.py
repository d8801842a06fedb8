"""Sender authentication in DNS: SPF, DKIM and DMARC as receivers will read them.

`digest check` asks the DNS (DIGEST_DNS_SERVERS, or the system's resolver) whether the
SPF record of the envelope sender's domain authorises SMTP_HOST, whether the DKIM record
holds the public half of DIGEST_DKIM_KEY, and whether a DMARC record exists for the From
domain and aligns with one of them. A real send asks only the DKIM question: a record
that does not match the key would make every signature fail. Each answer is one
finding with the record read; a DNS failure is a finding too, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from email.utils import parseaddr

import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.check import Finding, Level, is_local
from digest.config import Settings
from digest.dkim import GOOD_BITS, Signer, load_signer
from digest.errors import ConfigError

logger = logging.getLogger(__name__)

# RFC 7208, 4.6.4: at most 10 terms that cause DNS look-ups, and 2 that find nothing.
MAX_LOOKUPS = 10
MAX_VOID = 2
# RFC 7208, 3.4: an SPF record longer than this may not fit a UDP answer.
SPF_LONGEST = 450
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


def _short(record: str) -> str:
    """Return a DKIM record with its long p= value shortened, for one readable line."""
    return re.sub(
        r"(p=\s*)([A-Za-z0-9+/=\s]{24,})", lambda m: f"{m[1]}{m[2][:12]}…{m[2][-6:]}", record
    )


def _shown(texts: tuple[str, ...]) -> str:
    return " and ".join(f'"{_short(t)}"' for t in texts)


# --- SPF (RFC 7208) -----------------------------------------------------------------


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
            raise SpfError(
                "permerror", f"{domain} has {len(spf)} SPF records: {_shown(tuple(spf))}"
            )
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


# --- DKIM ---------------------------------------------------------------------------


def check_key(settings: Settings) -> list[Finding]:
    """Load DIGEST_DKIM_KEY as a send would; say what signs, or why nothing can."""
    try:
        signer = load_signer(settings)
    except ConfigError as err:
        return [Finding("error", "DIGEST_DKIM_KEY", str(err))]
    if signer is None:
        return []
    what = f"{signer.path}: {signer.kind}, {signer.bits} bits"
    what += f"; signs as d={signer.domain} s={signer.selector}"
    if signer.kind == "rsa" and signer.bits < GOOD_BITS:
        return [
            Finding(
                "warning",
                "DIGEST_DKIM_KEY",
                f"{what}: Gmail and Yahoo ask for {GOOD_BITS} bits; make a new key",
            )
        ]
    return [Finding("ok", "DIGEST_DKIM_KEY", what)]


def _tags(record: str) -> dict[str, str]:
    """Read a tag=value; list (DKIM, DMARC); a value keeps no spaces."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), "".join(value.split()))
    return tags


def check_dkim_record(signer: Signer, resolver: Dns) -> tuple[Finding, bool]:
    """Does the DKIM record hold the key's public half? Return the finding, and
    whether the record is known not to match (missing, revoked, another key)."""
    name = signer.record_name
    answer = resolver.txt(name)
    publish = "publish the record `digest check --records` prints"
    if answer.failed:
        return Finding("warning", "DKIM", f"{name}: {answer.failed}: not checked"), False
    if answer.missing:
        why = f"{name}: {answer.missing}: receivers cannot verify the signatures; {publish}"
        return Finding("error", "DKIM", why), True
    if len(answer.texts) > 1:
        why = f"{name}: {len(answer.texts)} TXT records ({_shown(answer.texts)}): keep one"
        return Finding("error", "DKIM", why), True
    record = answer.texts[0]
    said = f'{name}: "{_short(record)}"'
    tags = _tags(record)
    kind = tags.get("k", "rsa").lower()
    problem = ""
    if tags.get("v", "DKIM1") != "DKIM1" or "p" not in tags:
        problem = "not a DKIM key record (v=DKIM1; k=…; p=…)"
    elif not tags["p"]:
        problem = "the key is revoked (empty p=)"
    elif kind != signer.kind:
        problem = f"a k={kind} key, but DIGEST_DKIM_KEY is {signer.kind}"
    elif not _same_key(tags["p"], signer):
        problem = f"not the public half of DIGEST_DKIM_KEY ({signer.path})"
    if problem:
        return Finding("error", "DKIM", f"{said}: {problem}; {publish}"), True
    return Finding(
        "ok", "DKIM", f"{said}: the public half of DIGEST_DKIM_KEY ({signer.path})"
    ), False


def _same_key(published: str, signer: Signer) -> bool:
    """Compare keys, not text: a record may hold SubjectPublicKeyInfo or bare RSAPublicKey."""
    try:
        data = base64.b64decode(published, validate=True)
    except (binascii.Error, ValueError):
        return False
    if signer.kind != "rsa":
        return data == signer.public_key()
    ours = signer.key.public_key()
    assert isinstance(ours, rsa.RSAPublicKey)
    for load in (serialization.load_der_public_key, _pkcs1_public_key):
        try:
            theirs = load(data)
        except (ValueError, TypeError):
            continue
        if isinstance(theirs, rsa.RSAPublicKey):
            return theirs.public_numbers() == ours.public_numbers()
    return False


def _pkcs1_public_key(data: bytes) -> object:
    """Load a bare RSAPublicKey (PKCS #1), which some DKIM tools publish."""
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(data)
    return serialization.load_pem_public_key(pem + b"-----END RSA PUBLIC KEY-----\n")


def before_send(settings: Settings, *, force: bool = False) -> list[Finding]:
    """The DKIM question a real send asks first: an error when the record does not
    match the key (a warning with force); nothing when DKIM is not configured."""
    signer = load_signer(settings)
    if signer is None:
        return []
    try:
        resolver = Dns(settings)
    except (dns.exception.DNSException, ConfigError) as err:
        return [Finding("warning", "DKIM", f"{signer.record_name}: not checked: {err}")]
    finding, wrong = check_dkim_record(signer, resolver)
    if wrong and force:
        return [Finding("warning", "DKIM", f"{finding.message} (--force: sending anyway)")]
    if wrong:
        message = f"{finding.message}; or send anyway with --force"
        return [Finding("error", "DKIM", message)]
    return [finding] if finding.level != "ok" else []


# --- DMARC (RFC 7489) ---------------------------------------------------------------


def _aligned(domain: str, author: str, mode: str, policy_domain: str) -> bool:
    """Strict: the same name. Relaxed: the same organisation, taken without the public
    suffix list as one name under the other, or both under the policy's domain."""
    if domain == author:
        return True
    if mode == "s":
        return False
    under = (domain.endswith("." + author), author.endswith("." + domain))
    both = domain.endswith("." + policy_domain) and author.endswith("." + policy_domain)
    return any(under) or (policy_domain.count(".") >= 1 and both)


def check_dmarc(settings: Settings, signer: Signer | None, resolver: Dns) -> Finding:
    """Is there a DMARC record for the From domain, and does DKIM or SPF align with it?"""
    author = from_domain(settings)
    labels = author.split(".")
    # The From domain, then each parent above it but the top level (DMARC's tree walk).
    for at in range(len(labels) - 1):
        domain = ".".join(labels[at:])
        answer = resolver.txt(f"_dmarc.{domain}")
        if answer.failed:
            return Finding("warning", "DMARC", f"_dmarc.{domain}: {answer.failed}: not checked")
        found = [t for t in answer.texts if re.match(r"v=DMARC1\s*(;|$)", t)]
        if found:
            break
    else:
        return Finding(
            "error",
            "DMARC",
            f"_dmarc.{author}: no DMARC record: Gmail and Yahoo ask bulk senders for one;"
            " `digest check --records` prints one",
        )
    said = f'_dmarc.{domain}: "{found[0]}"'
    if len(found) > 1:
        return Finding("error", "DMARC", f"_dmarc.{domain}: {_shown(tuple(found))}: keep one")
    tags = _tags(found[0])
    policy = tags.get("sp", tags.get("p", "")) if domain != author else tags.get("p", "")
    if policy not in ("none", "quarantine", "reject"):
        return Finding("error", "DMARC", f"{said}: p= must be none, quarantine or reject")
    ways = []
    if signer is not None and _aligned(signer.domain, author, tags.get("adkim", "r"), domain):
        ways.append(f"DKIM d={signer.domain}")
    envelope = envelope_domain(settings)
    if _aligned(envelope, author, tags.get("aspf", "r"), domain):
        ways.append(f"SPF {envelope}")
    if not ways:
        dkim_domain = f"DKIM d={signer.domain}" if signer else "no DKIM signature"
        return Finding(
            "error",
            "DMARC",
            f"{said}: neither {dkim_domain} nor SPF {envelope} aligns with From {author}",
        )
    return Finding("ok", "DMARC", f"{said}: p={policy}; aligned: {' and '.join(ways)}")


# --- All of it -----------------------------------------------------------------------


def check_dns(settings: Settings) -> list[Finding]:
    """Return the SPF, DKIM and DMARC findings of `digest check`."""
    try:
        resolver = Dns(settings)
    except (dns.exception.DNSException, ConfigError) as err:
        return [Finding("warning", "DIGEST_DNS_SERVERS", f"no DNS to ask: {err}")]
    try:
        signer = load_signer(settings)
    except ConfigError:
        signer = None  # check_key has said why
    findings = [check_spf(settings, resolver)]
    if signer is not None:
        findings.append(check_dkim_record(signer, resolver)[0])
    elif settings.dkim_key is None:
        findings.append(
            Finding(
                "warning",
                "DKIM",
                f"DIGEST_DKIM_KEY is not set: messages leave unsigned, so {settings.smtp_host}"
                f" must sign them with a key for {from_domain(settings)}, or DMARC rests on"
                " SPF alone, which forwarding breaks",
            )
        )
    findings.append(check_dmarc(settings, signer, resolver))
    return findings


@dataclass(frozen=True)
class Record:
    """One TXT record to publish."""

    what: str
    name: str
    value: str
    note: str = ""


def records(settings: Settings) -> list[Record]:
    """Return the TXT records this configuration needs, filled in from the settings."""
    domain = envelope_domain(settings)
    host = settings.smtp_host
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None and not literal.is_loopback:
        spf = f"v=spf1 ip{literal.version}:{literal} -all"
        note = ""
    elif is_local(host) or literal is not None:
        spf = "v=spf1 ip4:ADDRESS -all"
        note = "ADDRESS: the public address mail leaves this machine from"
    else:
        spf = f"v=spf1 a:{host} -all"
        note = f"or the include: your relay documents; merge with any SPF record {domain} has"
    found = [Record("SPF", domain, spf, note)]
    signer = load_signer(settings)
    if signer is not None:
        found.append(Record("DKIM", signer.record_name, signer.record()))
    found.append(
        Record(
            "DMARC",
            f"_dmarc.{from_domain(settings)}",
            "v=DMARC1; p=none; adkim=r; aspf=r",
            "p=quarantine, then p=reject, once reports show the mail passes",
        )
    )
    return found

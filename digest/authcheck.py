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
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.check import Finding, is_local
from digest.config import Settings
from digest.dkim import GOOD_BITS, Signer, load_signer
from digest.dns_lookup import Address, Dns, envelope_domain, from_domain, short_record, shown
from digest.errors import ConfigError
from digest.spf import check_spf

logger = logging.getLogger(__name__)

__all__ = [
    "Dns",
    "before_send",
    "check_dkim_record",
    "check_dmarc",
    "check_dns",
    "check_key",
    "check_spf",
    "records",
]


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
        why = f"{name}: {len(answer.texts)} TXT records ({shown(answer.texts)}): keep one"
        return Finding("error", "DKIM", why), True
    record = answer.texts[0]
    said = f'{name}: "{short_record(record)}"'
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
        return Finding("error", "DMARC", f"_dmarc.{domain}: {shown(tuple(found))}: keep one")
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

"""DKIM signing (RFC 6376; Ed25519 as RFC 8463 adds it): the key is loaded and checked
once per run, and each personalised message is signed once, as the sender sends it.

The signature is dkimpy's: its relaxed canonicalisation, header selection and folding
build the same DKIM-Signature header `dkim.sign()` gives for the same message, key and
time (tests/test_dkim.py compares them byte for byte, and verifies with dkimpy and
SpamAssassin). Only the private-key operation is OpenSSL's (cryptography) rather than
dkimpy's pure-Python RSA, which costs about 11 ms a message, and a body that is already
in relaxed form (ours always is: base64 lines and boundaries) is hashed as it is rather
than rewritten by four regular expressions; bench/signing.py measures both.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from dkim.canonicalization import Relaxed

from digest.config import Settings
from digest.errors import ConfigError

# Receivers ignore signatures made with shorter RSA keys (RFC 8301); Gmail and Yahoo ask
# for 2048 bits, which `digest check` says.
MIN_BITS = 1024
GOOD_BITS = 2048
# What is signed (RFC 8058 asks for both List-Unsubscribe fields), each name listed a
# second time so that a copy of the field added on the way breaks the signature
# rather than riding on it.
SIGNED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
_NAME = b"DKIM-Signature"

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    """A loaded, checked key and where its public half lives in DNS."""

    path: Path
    selector: str
    # The signing domain (d=) in its ASCII (A-label) form.
    domain: str
    key: PrivateKey

    @property
    def algorithm(self) -> str:
        """Return the a= value: rsa-sha256 or ed25519-sha256."""
        return "rsa-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else "ed25519-sha256"

    @property
    def kind(self) -> str:
        """Return the k= value of the DNS record: rsa or ed25519."""
        return self.algorithm.split("-")[0]

    @property
    def bits(self) -> int:
        """Return the key's size in bits (256 for Ed25519)."""
        return self.key.key_size if isinstance(self.key, rsa.RSAPrivateKey) else 256

    @property
    def record_name(self) -> str:
        """Return where the public key is published: SELECTOR._domainkey.DOMAIN."""
        return f"{self.selector}._domainkey.{self.domain}"

    def public_key(self) -> bytes:
        """Return the p= bytes: SubjectPublicKeyInfo DER for RSA, the raw 32 for Ed25519."""
        public = self.key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            return public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def record(self) -> str:
        """Return the TXT value to publish at record_name."""
        return f"v=DKIM1; k={self.kind}; p={base64.b64encode(self.public_key()).decode()}"

    def sign(self, message: bytes, now: datetime | None = None) -> bytes:
        """Return message with its DKIM-Signature field first."""
        stamp = int(now.timestamp()) if now is not None else int(time.time())
        return self.signature(message, stamp) + message

    def signature(self, message: bytes, stamp: int) -> bytes:
        """Return the DKIM-Signature field (ending in CRLF) for message at time stamp."""
        if message.count(b"\n") != message.count(b"\r\n"):
            # dkimpy reads lines ended by LF alone as CRLF lines: so does this.
            message = re.sub(rb"\r?\n", b"\r\n", message)
        head, _, body = message.partition(b"\r\n\r\n")
        headers = _fields(head + b"\r\n")
        present = {name.lower() for name, _ in headers}
        include = tuple(n.encode() for n in SIGNED if n.encode() in present)
        include += include
        domain = self.domain.encode()
        fields = [
            (b"v", b"1"),
            (b"a", self.algorithm.encode()),
            (b"c", b"relaxed/relaxed"),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector.encode()),
            (b"t", str(stamp).encode()),
            (b"h", b" : ".join(include)),
            (b"bh", base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())),
            # A placeholder, as dkimpy folds it: b= starts a line of its own.
            (b"b", b"0" * 60),
        ]
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_NAME))
        value = dkim.RE_BTAG.sub(b"\\1", value)
        chosen = dkim.select_headers(Relaxed.canonicalize_headers(headers), include)
        ((_, own),) = Relaxed.canonicalize_headers([(_NAME, b" " + value)])
        signed = b"".join(name + b":" + text for name, text in chosen)
        signed += b"dkim-signature:" + own.rstrip()
        if isinstance(self.key, rsa.RSAPrivateKey):
            sealed = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            sealed = self.key.sign(hashlib.sha256(signed).digest())
        fields[-1] = (b"b", base64.b64encode(sealed))
        value = b"; ".join(b"=".join(f) for f in fields) + b"\r\n"
        folded: bytes = dkim.fold(value, namelen=len(_NAME))
        return _NAME + b": " + folded


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header block into (name, value with its folds and CRLF), as dkimpy does."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line + b"\r\n")
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value + b"\r\n"))
    return fields


def _relaxed_body(body: bytes) -> bytes:
    """Return body in relaxed form (RFC 6376, 3.4.4)."""
    # Already relaxed: no tab, no run of spaces, no space before a line end, one line
    # end at the end. A few fast scans instead of rewriting 100 KB with regexes.
    if (
        body.endswith(b"\r\n")
        and not body.endswith(b"\r\n\r\n")
        and b"\t" not in body
        and b"  " not in body
        and b" \r\n" not in body
    ):
        return body
    return bytes(Relaxed.canonicalize_body(body))


def signing_domain(settings: Settings) -> str:
    """Return d=: DIGEST_DKIM_DOMAIN or the From domain, in its A-label (xn--) form."""
    given = settings.dkim_domain or parseaddr(settings.sender)[1].rpartition("@")[2]
    name = given.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as err:
        raise ConfigError(f"DIGEST_DKIM_DOMAIN={given!r}: not a domain name: {err}") from None
    if "." not in ascii_name or not all(
        re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", label) for label in ascii_name.split(".")
    ):
        raise ConfigError(f"DIGEST_DKIM_DOMAIN={given!r}: not a domain name")
    return ascii_name


def load_signer(settings: Settings) -> Signer | None:
    """Return the signer DIGEST_DKIM_KEY configures, or None when it is not set.

    Anything that would stop a message from being signed is a ConfigError of one line
    naming the setting and the file, raised before anything is sent.
    """
    path = settings.dkim_key
    if path is None:
        return None

    def fail(why: str) -> ConfigError:
        return ConfigError(f"DIGEST_DKIM_KEY={path}: {why}")

    if not settings.dkim_selector:
        raise fail(
            "DIGEST_DKIM_SELECTOR is empty: name the selector its public key is published"
            " under (SELECTOR._domainkey.DOMAIN)"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as err:
        raise fail(f"cannot be read: {err.strerror or err}") from None
    key = _private_key(data, fail)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_BITS:
        raise fail(
            f"an RSA key of {key.key_size} bits: receivers ignore signatures made with"
            f" fewer than {MIN_BITS}; make one of {GOOD_BITS}"
        )
    return Signer(path, settings.dkim_selector, signing_domain(settings), key)


def _private_key(data: bytes, fail: Callable[[str], ConfigError]) -> PrivateKey:
    """Parse a PEM private key, RSA or Ed25519; say in one line what is wrong."""
    if b"-----BEGIN" not in data:
        raise fail("not a PEM file (it should start with -----BEGIN PRIVATE KEY-----)")
    if b"PRIVATE KEY-----" not in data and b"PUBLIC KEY-----" in data:
        raise fail(
            "holds a public key: give the private key here; its public half goes in DNS"
            " (`digest check --records`)"
        )
    if b"-----END" not in data:
        raise fail("cut short: the PEM has no -----END line")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise fail("encrypted with a passphrase: give the key unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise fail("not a readable private key (damaged or cut short?)") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise fail(f"a {type(key).__name__} key: DKIM signs with RSA or Ed25519 keys only")
    return key

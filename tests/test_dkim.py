"""DKIM signing: dkimpy's signature, verified by dkimpy and SpamAssassin through a real
DNS server, on messages that went through the real SMTP sink; and every bad key refused
in one line before anything is sent."""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import subprocess
import unittest.mock
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dnsserver import DnsServer
from smtpserver import Faults, Handler, SmtpServer

from digest.authcheck import Dns
from digest.cli import main
from digest.config import Settings, load_settings
from digest.dkim import SIGNED, Signer, load_signer
from digest.errors import ConfigError
from digest.store import Store

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
DOMAIN = "harbourtown.org"
SECRET = "pV3q8Zr1TbW6nYk2LsX9dHf4JmC7gQe0aR5u"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """Return key as PKCS #8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem(rsa_key))
    return path


def signer_of(key_file: Path, **changes: str) -> Signer:
    settings = dataclasses.replace(
        Settings(sender=f"Digest <digest@{DOMAIN}>", dkim_key=key_file, dkim_selector="d2026"),
        **changes,  # type: ignore[arg-type]
    )
    signer = load_signer(settings)
    assert signer is not None
    return signer


def zone_for(signer: Signer) -> dict[str, object]:
    """Return good SPF, DKIM and DMARC records for DOMAIN."""
    return {
        DOMAIN: [("TXT", "v=spf1 ip4:192.0.2.0/24 -all"), ("A", "192.0.2.10")],
        signer.record_name: [("TXT", signer.record())],
        f"_dmarc.{DOMAIN}": [("TXT", "v=DMARC1; p=quarantine")],
    }


def dnsfunc(server: DnsServer) -> object:
    """Return a dkimpy dnsfunc that asks the test's DNS server."""
    settings = Settings(dns_servers=(server.address,), dns_timeout=2)

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        answer = Dns(settings).txt(text.rstrip("."))
        return answer.texts[0].encode() if answer.texts else None

    return lookup


MESSAGE = (
    b"From: Digest <digest@harbourtown.org>\r\nSubject: Daily  Digest\r\n"
    b"Date: Sat, 28 Nov 2026 07:00:00 +0000\r\nList-Id: <digest.harbourtown.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nTo: ada@example.org\r\n"
    b"Message-ID: <x@harbourtown.org>\r\n"
    b"List-Unsubscribe: <https://news.harbourtown.org/unsubscribe/abc>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello,\r\n\r\nThe news.\r\n"
)


@pytest.mark.parametrize("body", [b"The news.\r\n", b"Tabs\tand  spaces \r\n\r\n\r\n"])
def test_the_signature_is_the_one_dkimpy_makes(key_file: Path, body: bytes) -> None:
    """Give byte for byte dkimpy's DKIM-Signature for the same message, key and time."""
    signer = signer_of(key_file)
    message = MESSAGE.replace(b"The news.\r\n", body)
    names = [n.encode() for n in SIGNED if n.encode() + b":" in message.lower()]
    with unittest.mock.patch("time.time", return_value=NOW.timestamp()):
        theirs = dkim.sign(
            message,
            b"d2026",
            DOMAIN.encode(),
            key_file.read_bytes(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=names + names,
        )
    assert signer.signature(message, int(NOW.timestamp())) == theirs
    for name in (b"list-unsubscribe", b"list-unsubscribe-post", b"list-id", b"from", b"to"):
        assert name in theirs


def test_ed25519_keys_sign_with_ed25519_sha256(tmp_path: Path) -> None:
    """Sign with ed25519-sha256 when the key is Ed25519, as dkimpy would."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "ed.pem"
    path.write_bytes(pem(key))
    signer = signer_of(path)
    assert signer.algorithm == "ed25519-sha256" and "k=ed25519" in signer.record()
    signed = signer.sign(MESSAGE, NOW)
    assert b"a=ed25519-sha256" in signed
    record = signer.record().encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)


def test_dkimpy_verifies_through_the_dns_and_an_altered_message_fails(key_file: Path) -> None:
    """Verify with dkimpy against the test's DNS; fail once a byte of the body changes."""
    signer = signer_of(key_file)
    with DnsServer(zone_for(signer)) as server:
        signed = signer.sign(MESSAGE, NOW)
        assert dkim.verify(signed, dnsfunc=dnsfunc(server))
        assert not dkim.verify(signed.replace(b"The news.", b"The nevs."), dnsfunc=dnsfunc(server))
        assert not dkim.verify(
            signed.replace(b"Subject: Daily", b"Subject: Weekly"), dnsfunc=dnsfunc(server)
        )


def test_an_idn_domain_signs_with_its_a_label(key_file: Path) -> None:
    """Sign as d=xn--… for a DIGEST_DKIM_DOMAIN written with non-ASCII letters."""
    signer = signer_of(key_file, dkim_domain="bücher.example")
    assert signer.domain == "xn--bcher-kva.example"
    assert b"d=xn--bcher-kva.example;" in signer.sign(MESSAGE, NOW)
    assert signer.record_name == "d2026._domainkey.xn--bcher-kva.example"
    from_idn = signer_of(key_file, sender="digest@xn--bcher-kva.example")
    assert from_idn.domain == "xn--bcher-kva.example"


def bad_keys(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> dict[str, tuple[bytes | None, str]]:
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    whole = pem(rsa_key)
    return {
        "missing": (None, "no such file"),
        "truncated": (whole[: len(whole) // 2], "cut short"),
        "damaged": (whole.replace(b"MII", b"MIX", 1), "not a readable private key"),
        "public": (public, "holds a public key"),
        "not pem": (b"hello\n", "not a PEM file"),
        "small": (_weak_pem(), "an RSA key of 512 bits"),
    }


def _weak_pem() -> bytes:
    """Return a 512-bit RSA key (which cryptography no longer makes): too short to sign."""
    made = subprocess.run(["openssl", "genrsa", "512"], capture_output=True, check=True)
    return made.stdout


@pytest.mark.parametrize("case", ["missing", "truncated", "damaged", "public", "not pem", "small"])
def test_a_bad_key_is_one_line_naming_the_setting_and_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, case: str
) -> None:
    """Refuse each bad key with one line naming DIGEST_DKIM_KEY and the file."""
    data, why = bad_keys(tmp_path, rsa_key)[case]
    path = tmp_path / "key.pem"
    if data is not None:
        path.write_bytes(data)
    settings = Settings(dkim_key=path, dkim_selector="d2026")
    with pytest.raises(ConfigError) as caught:
        load_signer(settings)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"DIGEST_DKIM_KEY={path}: ") and why in text


def test_an_empty_or_bad_selector_is_refused(tmp_path: Path, key_file: Path) -> None:
    """Refuse an empty selector with a key set, and one with characters DNS refuses."""
    with pytest.raises(ConfigError, match="DIGEST_DKIM_SELECTOR is empty"):
        load_signer(Settings(dkim_key=key_file, dkim_selector=""))
    env = tmp_path / ".env"
    env.write_text("DIGEST_DKIM_SELECTOR=2026_nov!\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env, {})
    assert str(env) in str(caught.value) and "DIGEST_DKIM_SELECTOR" in str(caught.value)


# --- Sends through the real SMTP sink -------------------------------------------------


@pytest.fixture
def sink() -> Iterator[SmtpServer]:
    with SmtpServer(Handler(Faults())) as running:
        yield running


def _env(tmp_path: Path, port: int, dns: str, key_file: Path) -> Path:
    env = tmp_path / ".env"
    env.write_text(
        f"DIGEST_DB={tmp_path / 'digest.db'}\nDIGEST_SECRET_KEY={SECRET}\n"
        f"DIGEST_BASE_URL=https://news.{DOMAIN}\nDIGEST_FROM=Digest <digest@{DOMAIN}>\n"
        f"SMTP_HOST=127.0.0.1\nSMTP_PORT={port}\nSMTP_SECURITY=none\n"
        f"DIGEST_DKIM_KEY={key_file}\nDIGEST_DKIM_SELECTOR=d2026\n"
        f"DIGEST_DNS_SERVERS={dns}\nDIGEST_DNS_TIMEOUT=2\n"
    )
    return env


def _edition(settings: Settings) -> None:
    from test_send import add_edition, add_subscribers

    with Store(settings.db) as store:
        add_edition(store, "e1")
        add_subscribers(store, 2)


def test_digest_send_signs_every_message_and_refuses_a_wrong_record(
    tmp_path: Path, sink: SmtpServer, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refuse to start on a DKIM record of another key (unless --force); sign every
    message otherwise, each verified by dkimpy and SpamAssassin's DKIM plugin."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    signer = signer_of(key_file)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = other.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrong = f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"
    zone = zone_for(signer)
    good = zone[signer.record_name]
    zone[signer.record_name] = [("TXT", wrong)]
    runner = CliRunner()
    with DnsServer(zone) as dns:
        env = _env(tmp_path, sink.port, dns.address, key_file)
        _edition(load_settings(env, {}))
        refused = runner.invoke(main, ["--env-file", str(env), "send", "e1"])
        assert refused.exit_code == 2, refused.output
        assert "error   DKIM: d2026._domainkey.harbourtown.org: " in refused.output
        assert "not the public half of DIGEST_DKIM_KEY" in refused.output
        assert "--force" in refused.output
        assert sink.handler.received == []
        zone[signer.record_name] = good
        sent = runner.invoke(main, ["--env-file", str(env), "send", "e1"])
        assert sent.exit_code == 0, sent.output
        assert len(sink.handler.received) == 2
        for message in sink.handler.received:
            assert message.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed")
            assert dkim.verify(message.data, dnsfunc=dnsfunc(dns))
        data = sink.handler.received[0].data
        assert not dkim.verify(
            data.replace(b"Unsubscribe", b"Unsubscrihe", 1), dnsfunc=dnsfunc(dns)
        )
        rules = spamassassin_rules(data, dns.address, tmp_path)
        assert {"DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU"} <= rules, rules


def test_force_sends_despite_a_missing_record(
    tmp_path: Path, sink: SmtpServer, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Send with --force when the record is missing, saying so."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    with DnsServer({}) as dns:
        env = _env(tmp_path, sink.port, dns.address, key_file)
        _edition(load_settings(env, {}))
        sent = CliRunner().invoke(main, ["--env-file", str(env), "send", "--force", "e1"])
    assert sent.exit_code == 0, sent.output
    assert "warning DKIM: d2026._domainkey.harbourtown.org: no such name" in sent.output
    assert "(--force: sending anyway)" in sent.output
    assert len(sink.handler.received) == 2


def spamassassin_rules(data: bytes, dns: str, home: Path) -> set[str]:
    """Return the rules SpamAssassin's tests hit on data, its DNS the test's server."""
    if shutil.which("spamassassin") is None:
        pytest.fail("spamassassin is not installed: run scripts/system-deps.sh as root")
    done = subprocess.run(
        [
            "spamassassin",
            "-t",
            "--cf=dns_available yes",
            f"--cf=dns_server {dns}",
            "--cf=skip_rbl_checks 1",
            "--cf=use_bayes 0",
        ],
        input=data,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": str(home)},
    )
    report = done.stdout.decode("utf-8", "replace")
    header = report.split("\n\n", 1)[0].replace("\n\t", " ").replace("\n ", " ")
    tests = header.split("tests=", 1)[1].split(" autolearn", 1)[0] if "tests=" in header else ""
    return {t.strip() for t in tests.replace("\n", "").split(",") if t.strip()}

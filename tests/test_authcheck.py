"""`digest check`'s SPF, DKIM and DMARC findings, from a real DNS server on 127.0.0.1
(UDP and TCP) answering good, missing, mismatched and broken records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from dnsserver import DnsServer

from digest.authcheck import Dns, check_dns, records
from digest.cli import main
from digest.config import Settings
from digest.dkim import load_signer
from digest.spf import Spf

DOMAIN = "harbourtown.org"
KEY = Path(__file__).parent / "data" / "dkim-test.pem"


def settings_for(server: DnsServer, **changes: object) -> Settings:
    base = Settings(
        sender=f"Digest <digest@{DOMAIN}>",
        smtp_host=f"smtp.{DOMAIN}",
        dkim_key=KEY,
        dkim_selector="d1",
        dns_servers=(server.address,),
        dns_timeout=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def record() -> str:
    signer = load_signer(Settings(sender=f"d@{DOMAIN}", dkim_key=KEY, dkim_selector="d1"))
    assert signer is not None
    return signer.record()


def good_zone() -> dict[str, object]:
    return {
        DOMAIN: [("TXT", "v=spf1 mx include:_spf.relay.net -all"), ("MX", f"10 mx.{DOMAIN}.")],
        f"mx.{DOMAIN}": [("A", "192.0.2.1")],
        "_spf.relay.net": [("TXT", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 ~all")],
        f"smtp.{DOMAIN}": [("A", "198.51.100.7")],
        f"d1._domainkey.{DOMAIN}": [("TXT", record())],
        f"_dmarc.{DOMAIN}": [("TXT", "v=DMARC1; p=quarantine; adkim=s")],
    }


def lines(settings: Settings) -> dict[str, str]:
    return {f.key: f.line() for f in check_dns(settings)}


def test_good_records_pass_each_with_the_record_read() -> None:
    """Pass SPF (through mx and include), DKIM (the same key) and DMARC (aligned)."""
    with DnsServer(good_zone()) as server:
        found = lines(settings_for(server))
    assert found["SPF"].startswith('ok      SPF: harbourtown.org: "v=spf1 mx include:')
    assert "authorises smtp.harbourtown.org (198.51.100.7)" in found["SPF"]
    assert found["DKIM"].startswith(
        'ok      DKIM: d1._domainkey.harbourtown.org: "v=DKIM1; k=rsa; p='
    )
    assert found["DMARC"].startswith("ok      DMARC: _dmarc.harbourtown.org:")
    assert "aligned: DKIM d=harbourtown.org and SPF harbourtown.org" in found["DMARC"]


def test_missing_records_are_errors() -> None:
    """Say each record is missing: no SPF, no DKIM record, no DMARC."""
    with DnsServer({f"smtp.{DOMAIN}": [("A", "198.51.100.7")]}) as server:
        found = lines(settings_for(server))
    assert found["SPF"].startswith("error   SPF: harbourtown.org has no SPF record")
    assert found["DKIM"].startswith("error   DKIM: d1._domainkey.harbourtown.org: no such name")
    assert found["DMARC"].startswith("error   DMARC: _dmarc.harbourtown.org: no DMARC record")


def test_a_record_of_another_key_is_an_error() -> None:
    """Compare the keys: a record holding another key is an error naming the file."""
    from base64 import b64encode

    from cryptography.hazmat.primitives import serialization

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    zone = good_zone()
    zone[f"d1._domainkey.{DOMAIN}"] = [("TXT", f"v=DKIM1; p={b64encode(spki).decode()}")]
    with DnsServer(zone) as server:
        found = lines(settings_for(server))
    assert found["DKIM"].startswith("error   DKIM: ")
    assert f"not the public half of DIGEST_DKIM_KEY ({KEY})" in found["DKIM"]


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("SERVFAIL", "the DNS server failed (SERVFAIL)"),
        ("TIMEOUT", "no answer within 1 s (DIGEST_DNS_TIMEOUT)"),
    ],
)
def test_servfail_and_a_timeout_are_findings(entry: str, said: str) -> None:
    """Turn SERVFAIL and a timeout into warnings naming the name asked."""
    zone = good_zone()
    zone[f"d1._domainkey.{DOMAIN}"] = entry
    with DnsServer(zone) as server:
        found = lines(settings_for(server))
    assert found["DKIM"] == f"warning DKIM: d1._domainkey.{DOMAIN}: {said}: not checked"


def test_two_spf_records_are_an_error() -> None:
    zone = good_zone()
    zone[DOMAIN] = [("TXT", "v=spf1 -all"), ("TXT", "v=spf1 a -all")]
    with DnsServer(zone) as server:
        found = lines(settings_for(server))
    assert found["SPF"].startswith("error   SPF: harbourtown.org has 2 SPF records:")


def test_a_long_record_comes_over_tcp_and_without_tcp_is_a_finding(tmp_path: Path) -> None:
    """Read a 4096-bit key's record (over 512 bytes) by TCP; say so when TCP fails."""
    from cryptography.hazmat.primitives import serialization

    big = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    key = tmp_path / "big.pem"
    key.write_bytes(
        big.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = load_signer(Settings(sender=f"d@{DOMAIN}", dkim_key=key, dkim_selector="d1"))
    assert signer is not None and len(signer.record()) > 512
    zone = good_zone()
    zone[f"d1._domainkey.{DOMAIN}"] = [("TXT", signer.record())]
    with DnsServer(zone) as server:
        assert lines(settings_for(server, dkim_key=key))["DKIM"].startswith("ok ")
    with DnsServer(zone, tcp=False) as server:
        found = lines(settings_for(server, dkim_key=key))["DKIM"]
    assert found.startswith("warning DKIM: ") and "too long for UDP" in found, found


def test_spf_redirect_a_and_the_lookup_limit() -> None:
    """Follow redirect= and a:; stop with permerror past 10 look-ups."""
    import ipaddress

    zone: dict[str, object] = {
        DOMAIN: [("TXT", "v=spf1 redirect=_spf.harbourtown.org")],
        f"_spf.{DOMAIN}": [("TXT", "v=spf1 a:out.harbourtown.org/28 -all")],
        f"out.{DOMAIN}": [("A", "203.0.113.3")],
        "loop.example": [("TXT", "v=spf1 " + " ".join(f"include:l{n}.example" for n in range(11)))],
    }
    for n in range(11):
        zone[f"l{n}.example"] = [("TXT", "v=spf1 -all")]
    with DnsServer(zone) as server:
        dns = Dns(settings_for(server))
        assert Spf(dns).check(ipaddress.ip_address("203.0.113.9"), DOMAIN) == "pass"
        assert Spf(dns).check(ipaddress.ip_address("203.0.113.99"), DOMAIN) == "fail"
        from digest.spf import SpfError

        with pytest.raises(SpfError, match="more than 10 DNS look-ups"):
            Spf(dns).check(ipaddress.ip_address("203.0.113.9"), "loop.example")


def test_without_dkim_the_relay_must_sign() -> None:
    with DnsServer(good_zone()) as server:
        found = lines(settings_for(server, dkim_key=None))
    assert found["DKIM"].startswith("warning DKIM: DIGEST_DKIM_KEY is not set")
    assert "smtp.harbourtown.org must sign them" in found["DKIM"]


def test_check_records_prints_the_values_to_publish(tmp_path: Path) -> None:
    """Print SPF, DKIM and DMARC TXT values from the configuration, DNS unasked."""
    env = tmp_path / ".env"
    env.write_text(
        f"DIGEST_FROM=digest@{DOMAIN}\nSMTP_HOST=smtp.{DOMAIN}\n"
        f"DIGEST_DKIM_KEY={KEY}\nDIGEST_DKIM_SELECTOR=d1\n"
    )
    result = CliRunner().invoke(main, ["--env-file", str(env), "check", "--records"], env={})
    assert result.exit_code == 0, result.output
    assert f"SPF: {DOMAIN}  TXT\n  v=spf1 a:smtp.{DOMAIN} -all\n" in result.output
    assert f"DKIM: d1._domainkey.{DOMAIN}  TXT\n  {record()}\n" in result.output
    assert f"DMARC: _dmarc.{DOMAIN}  TXT\n  v=DMARC1; p=none" in result.output
    assert [r.what for r in records(Settings(sender=f"d@{DOMAIN}"))] == ["SPF", "DMARC"]

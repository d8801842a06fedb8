"""`digest check` against a real SMTP server (aiosmtpd, STARTTLS and a login): one
configuration that passes everything, and each condition that must fail it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dnsserver import DnsServer
from smtpserver import Certificates, Faults, Handler, SmtpServer, make_certificates

from digest.check import Finding, before_send, has_errors, looks_random, new_secret, run_checks
from digest.cli import main
from digest.config import Settings, load_settings

SECRET = "pV3q8Zr1TbW6nYk2LsX9dHf4JmC7gQe0aR5u"
LOGIN = ("digest", "a password")
# The README's own footer example: no unsubscribe link.
README_FOOTER = """<tr>
  <td class="footer">
    <p>{{ edition.title }} is written by the newsroom of Example Town.</p>
  </td>
</tr>
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Return a throw-away CA and a certificate for 127.0.0.1."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server(certs: Certificates) -> Iterator[SmtpServer]:
    """Run aiosmtpd with STARTTLS required and a login."""
    with SmtpServer(Handler(Faults()), tls=certs.server_context(), auth=LOGIN) as running:
        yield running


# SPF, DMARC and a DKIM key for the ready configuration's domain.
DKIM_KEY = Path(__file__).parent / "data" / "dkim-test.pem"


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    """Answer for news.digest-check.net: SPF, the DKIM record of DKIM_KEY, DMARC."""
    from digest.dkim import load_signer

    signer = load_signer(
        Settings(sender="digest@news.digest-check.net", dkim_key=DKIM_KEY, dkim_selector="d1")
    )
    assert signer is not None
    zone = {
        "news.digest-check.net": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
        signer.record_name: [("TXT", signer.record())],
        "_dmarc.news.digest-check.net": [("TXT", "v=DMARC1; p=reject")],
    }
    with DnsServer(zone) as running:
        yield running


DNS_ADDRESS: list[str] = []


@pytest.fixture(autouse=True)
def _dns_address(dns: DnsServer) -> None:
    DNS_ADDRESS[:] = [dns.address]


def ready_env(tmp_path: Path, port: int, certs: Certificates) -> dict[str, str]:
    """Return settings, as the environment, that are ready to send to real people."""
    return {
        "DIGEST_DKIM_KEY": str(DKIM_KEY),
        "DIGEST_DKIM_SELECTOR": "d1",
        "DIGEST_DNS_SERVERS": DNS_ADDRESS[0],
        "DIGEST_DNS_TIMEOUT": "2",
        "DIGEST_DB": str(tmp_path / "digest.db"),
        "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        "DIGEST_BASE_URL": "https://news.digest-check.net",
        "DIGEST_FROM": "Digest <digest@news.digest-check.net>",
        "DIGEST_SECRET_KEY": SECRET,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "starttls",
        "SMTP_CA_FILE": str(certs.ca_file),
        "SMTP_USERNAME": LOGIN[0],
        "SMTP_PASSWORD": LOGIN[1],
        "SMTP_TIMEOUT": "5",
    }


def settings_of(env: dict[str, str], **changes: str) -> Settings:
    """Load settings from env with changes (an empty value removes a key)."""
    merged = {**env, **changes}
    return load_settings(None, {k: v for k, v in merged.items() if v})


def problems(findings: list[Finding]) -> list[tuple[str, str]]:
    """Return the (level, key) of every finding that is not ok."""
    return [(f.level, f.key) for f in findings if f.level != "ok"]


def test_a_ready_configuration_passes_and_sends_nothing(
    tmp_path: Path, server: SmtpServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass every check, the SMTP round trip included, without sending a message."""
    monkeypatch.chdir(tmp_path)
    findings = run_checks(settings_of(ready_env(tmp_path, server.port, certs)))
    assert problems(findings) == []
    keys = {f.key for f in findings}
    assert {"DIGEST_BASE_URL", "DIGEST_SECRET_KEY", "DIGEST_FROM", "DIGEST_LIST_ID"} <= keys
    assert {"SMTP_HOST", "SMTP_SECURITY", "SMTP_PASSWORD", "templates"} <= keys
    lines = [f.line() for f in findings]
    assert any("MAIL FROM:<digest@news.digest-check.net> accepted" in x for x in lines)
    assert any("under Gmail's 102 KB clip" in x and " KB of HTML" in x for x in lines)
    assert server.logins == [LOGIN[0]]
    assert server.handler.received == []


# Each: a change to the ready configuration, and the error it must give.
FAILING = {
    "plain http base URL": ({"DIGEST_BASE_URL": "http://news.digest-check.net"}, "DIGEST_BASE_URL"),
    "loopback base URL": ({"DIGEST_BASE_URL": "https://127.0.0.1:8080"}, "DIGEST_BASE_URL"),
    "private base URL": ({"DIGEST_BASE_URL": "https://10.1.2.3"}, "DIGEST_BASE_URL"),
    ".invalid base URL": ({"DIGEST_BASE_URL": "https://digest.invalid"}, "DIGEST_BASE_URL"),
    "no secret": ({"DIGEST_SECRET_KEY": ""}, "DIGEST_SECRET_KEY"),
    "one-character secret": ({"DIGEST_SECRET_KEY": "x"}, "DIGEST_SECRET_KEY"),
    "repeated secret": ({"DIGEST_SECRET_KEY": "k" * 40}, "DIGEST_SECRET_KEY"),
    "example.com sender": ({"DIGEST_FROM": "digest@example.com"}, "DIGEST_FROM"),
    "bare host sender": ({"DIGEST_FROM": "digest@mailhost"}, "DIGEST_FROM"),
    "bare list id": ({"DIGEST_LIST_ID": "mylist"}, "DIGEST_LIST_ID"),
    "no STARTTLS": ({"SMTP_PORT": "plain"}, "SMTP_SECURITY"),
    "untrusted certificate": ({"SMTP_CA_FILE": ""}, "SMTP_CA_FILE"),
    "wrong password": ({"SMTP_PASSWORD": "wrong"}, "SMTP_PASSWORD"),
    "nobody listening": ({"SMTP_PORT": "closed"}, "SMTP_HOST"),
}


@pytest.mark.parametrize("case", FAILING)
def test_each_unsafe_setting_is_an_error_naming_its_key(
    case: str,
    tmp_path: Path,
    server: SmtpServer,
    certs: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Give an error line naming the key for each condition that makes a send unsafe."""
    monkeypatch.chdir(tmp_path)
    changes, key = FAILING[case]
    env = ready_env(tmp_path, server.port, certs)
    if case == "no STARTTLS":
        with SmtpServer() as plain:
            findings = run_checks(settings_of(env, SMTP_PORT=str(plain.port)))
    elif case == "nobody listening":
        with SmtpServer() as gone:
            port = gone.port
        findings = run_checks(settings_of(env, SMTP_PORT=str(port)))
    else:
        findings = run_checks(settings_of(env, **changes))
    assert ("error", key) in problems(findings), [f.line() for f in findings]
    assert has_errors(findings)
    assert server.handler.received == []


def test_a_refused_sender_is_an_error_and_nothing_is_sent(
    tmp_path: Path, server: SmtpServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail on a MAIL FROM the server refuses, naming DIGEST_FROM and the reply."""
    monkeypatch.chdir(tmp_path)
    server.handler.faults.mail.append("553 5.7.1 Sender address rejected: not owned by user")
    findings = run_checks(settings_of(ready_env(tmp_path, server.port, certs)))
    (error,) = [f for f in findings if f.level == "error"]
    assert error.key == "DIGEST_FROM" and "553 5.7.1 Sender address rejected" in error.message


def test_templates_without_an_unsubscribe_link_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refuse the README's footer example, which drops the unsubscribe link from the HTML."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "_footer.html.j2").write_text(README_FOOTER, encoding="utf-8")
    env = ready_env(tmp_path, 1, make_certificates(tmp_path))
    findings = before_send(settings_of(env, DIGEST_TEMPLATES_DIR=str(mine)))
    (error,) = [f for f in findings if f.level == "error"]
    assert error.key == "DIGEST_TEMPLATES_DIR"
    assert "no unsubscribe link in the HTML part" in error.message
    assert "text part" not in error.message


def test_an_edition_over_gmails_clip_is_a_warning_with_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warn, with the figure, when the HTML passes Gmail's 102 KB clip."""
    monkeypatch.chdir(tmp_path)
    env = ready_env(tmp_path, 1, make_certificates(tmp_path))
    findings = before_send(settings_of(env, DIGEST_MAX_ITEMS="120", DIGEST_HIGHLIGHTS="6"))
    assert problems(findings) == [("warning", "DIGEST_MAX_ITEMS")]
    (warning,) = [f for f in findings if f.level == "warning"]
    size = float(warning.message.split(": ")[1].split(" KB")[0])
    assert size > 102 and "over Gmail's 102 KB clip" in warning.message


def test_plain_text_smtp_is_fine_to_this_host_and_a_warning_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accept SMTP_SECURITY=none to a relay on this host; warn for any other host."""
    monkeypatch.chdir(tmp_path)
    env = ready_env(tmp_path, 25, make_certificates(tmp_path))
    local = before_send(settings_of(env, SMTP_SECURITY="none", SMTP_HOST="localhost"))
    assert problems(local) == []
    remote = before_send(settings_of(env, SMTP_SECURITY="none", SMTP_HOST="smtp.mailhost.net"))
    assert problems(remote) == [("warning", "SMTP_SECURITY")]
    assert "password" in next(f.message for f in remote if f.key == "SMTP_SECURITY")


def test_new_secrets_pass_the_secret_check() -> None:
    """Print secrets that pass; refuse words, repeats and runs."""
    assert all(looks_random(new_secret()) for _ in range(200))
    weak_ones = ("k" * 40, "abcdefghijklmnopqrstuvwxyz0123456789", "password" * 4)
    for weak in weak_ones:
        assert not looks_random(weak)


def test_digest_check_command(
    tmp_path: Path, server: SmtpServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Print one line per check, exit 0 when ready and 1 on any error; print a secret."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    env = ready_env(tmp_path, server.port, certs)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    runner = CliRunner()
    ok = runner.invoke(main, ["check"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == "0 errors, 0 warnings."
    assert all(line.startswith("ok ") for line in ok.stdout.splitlines()[:-1]), ok.stdout
    monkeypatch.setenv("DIGEST_BASE_URL", "http://127.0.0.1:8080")
    bad = runner.invoke(main, ["check"])
    assert bad.exit_code == 1
    assert "error   DIGEST_BASE_URL: http://127.0.0.1:8080 is not https://" in bad.output
    assert bad.stdout.splitlines()[-1] == "2 errors, 0 warnings."
    secret = runner.invoke(main, ["check", "--new-secret"]).output.strip()
    assert len(secret) >= 32 and looks_random(secret)


def test_the_scheduler_does_not_start_with_settings_unsafe_to_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refuse `digest schedule` with DIGEST_DELIVERY=smtp when a check is an error."""
    monkeypatch.chdir(tmp_path)
    env = {"DIGEST_DELIVERY": "smtp", "DIGEST_DB": str(tmp_path / "digest.db")}
    result = CliRunner().invoke(main, ["schedule"], env=env)
    assert result.exit_code == 2, result.output
    assert "error   DIGEST_SECRET_KEY: is not set" in result.output
    assert "Scheduling" not in result.output

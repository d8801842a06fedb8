"""Real mail servers for the bounce tests: Dovecot (IMAP, POP3) and Postfix, on loopback.

Each runs from a configuration the test writes into a temporary folder of its own, with
its queue, mail, logs and pid files there too; nothing under /etc is read or written
beyond the packages' own programs. The machine runs the tests as root, so the mail is
owned by nobody, and the folder is one that nobody may enter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

NOBODY = (65534, 65534)


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}: {log.read_text(errors='replace')[-2000:]}")


@contextlib.contextmanager
def _folder(prefix: str) -> Iterator[Path]:
    # Not under pytest's tmp_path: its parents are closed to the servers' own users.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Dovecot:
    """A running Dovecot: one user, its Maildir, IMAPS and POP3S ports, its CA."""

    imaps_port: int
    pop3s_port: int
    user: str
    password: str
    maildir: Path
    ca_file: Path


def dovecot_installed() -> bool:
    """Tell whether Dovecot with IMAP and POP3 is installed."""
    return bool(shutil.which("dovecot")) and Path("/usr/lib/dovecot/imap").exists()


@contextlib.contextmanager
def dovecot() -> Iterator[Dovecot]:
    """Start Dovecot on 127.0.0.1 for the test, and stop it after."""
    with _folder("digest-dovecot-") as base:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_and_cert_chain_pem.write_to_path(str(base / "server.pem"))
        ca.cert_pem.write_to_path(str(base / "ca.pem"))
        cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
        cert.private_key_pem.write_to_path(str(base / "key.pem"))
        home = base / "home" / "bounces"
        (home / "Maildir").mkdir(parents=True)
        for path in (base / "home", home, home / "Maildir"):
            os.chown(path, *NOBODY)
        (base / "passwd").write_text("bounces:{PLAIN}s3cret-pass\n")
        imaps, pop3s = free_port(), free_port()
        log = base / "dovecot.log"
        conf = base / "dovecot.conf"
        conf.write_text(
            f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {log}
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={base}/home/%u
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(base / "stderr.log", "wb"),  # noqa: SIM115
        )
        try:
            _wait_for(imaps, proc, base / "stderr.log")
            _wait_for(pop3s, proc, log)
            yield Dovecot(imaps, pop3s, "bounces", "s3cret-pass", home / "Maildir", base / "ca.pem")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Postfix:
    """A running Postfix: SMTP on a loopback port; local users of `localhost.test` do not
    exist, so a message to one is accepted and then bounced; mail for `bounce.test` is
    delivered to the Maildir `maildir`."""

    port: int
    maildir: Path
    base: Path


def postfix_installed() -> bool:
    """Tell whether Postfix is installed."""
    return bool(shutil.which("postfix")) and Path("/usr/share/postfix/master.cf.dist").exists()


@contextlib.contextmanager
def postfix() -> Iterator[Postfix]:
    """Start a private Postfix instance on 127.0.0.1, all of it in a temporary folder."""
    with _folder("digest-postfix-") as base:
        conf, queue, data, mail = (base / n for n in ("conf", "queue", "data", "mail"))
        for path in (conf, queue, data, mail):
            path.mkdir()
        os.chown(data, *_postfix_ids())
        os.chown(mail, *NOBODY)
        port = free_port()
        (conf / "vmailbox").write_text("@bounce.test bounces/\n")
        (conf / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.localhost.test
mydomain = localhost.test
myorigin = localhost.test
mydestination = localhost.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# Accept every local recipient, then bounce the unknown ones after the fact.
local_recipient_maps =
alias_maps =
alias_database =
virtual_mailbox_domains = bounce.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{conf}/vmailbox
virtual_uid_maps = static:{NOBODY[0]}
virtual_gid_maps = static:{NOBODY[1]}
relayhost =
default_transport = error:no mail leaves this test
smtputf8_enable = no
biff = no
maillog_file_prefixes = {base}
maillog_file = {base}/postfix.log
queue_run_delay = 1s
"""
        )
        master = Path("/usr/share/postfix/master.cf.dist").read_text()
        master = master.replace("smtp      inet", f"127.0.0.1:{port} inet", 1)
        master += "postlog   unix-dgram n  -       n       -       1       postlogd\n"
        (conf / "master.cf").write_text(master)
        env = {**os.environ, "MAIL_CONFIG": str(conf)}
        log = base / "postfix.log"
        log.touch()
        subprocess.run(
            ["postfix", "-c", str(conf), "set-permissions"],
            env=env,
            capture_output=True,
            check=False,
        )
        started = subprocess.run(
            ["postfix", "-c", str(conf), "start"], env=env, capture_output=True, check=False
        )
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {log.read_text()[-2000:]}")
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postfix does not listen: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield Postfix(port, mail / "bounces", base)
        finally:
            subprocess.run(
                ["postfix", "-c", str(conf), "stop"], env=env, capture_output=True, check=False
            )


def _postfix_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postfix")
    return entry.pw_uid, entry.pw_gid

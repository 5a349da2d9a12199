#!/usr/bin/python3
"""Delivery ledger for mailwire's interop tests.

An SMTP server built on Debian's python3-aiosmtpd that records every message it
accepts, so that tests can prove that no message was lost and none was delivered
twice. Run it with Debian's /usr/bin/python3 (the python3 first on PATH may lack
aiosmtpd). start.sh starts it; nothing else should need to.

Each accepted message is written to DIR/<n>.eml (the DATA bytes after
dot-unstuffing, exactly as received) and then described by one JSON line
appended to DIR/index.jsonl:

  {"n": 1, "file": "1.eml", "mail_from": "...", "rcpt_tos": ["..."],
   "message_id": "<...>", "x_test_id": "...", "size": 123, "sha256": "...",
   "mail_options": [...], "rcpt_options": [...], "tls": false,
   "auth": null, "peer": "127.0.0.1:40000", "time": 1700000000.0}

A line is written only after its .eml file is complete, and is never rewritten.

Behaviour chosen by the recipient's local part (case-insensitive), so that tests
running in parallel do not disturb each other:

  tempfail...                 451 4.3.0 at RCPT, every time
  reject...                   550 5.1.1 at RCPT, every time
  flaky451-N-<token>          451 4.3.0 for the first N RCPTs of that exact
                              address, then accepted
  flaky421-N-<token>          421 4.3.2 and the connection is closed, for the
                              first N RCPTs of that exact address, then accepted
  anything else               accepted

The server offers SIZE, 8BITMIME, SMTPUTF8, STARTTLS (when given a certificate)
and AUTH PLAIN/LOGIN after STARTTLS (users from --users), and neither
PIPELINING, CHUNKING nor DSN.
"""

import argparse
import asyncio
import hashlib
import json
import os
import re
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

FLAKY = re.compile(r"^flaky(451|421)-(\d+)-", re.IGNORECASE)


def header_value(content, name):
    """Return the first value of header field `name` in the message bytes, unfolded."""
    end = len(content)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = content.find(sep)
        if i != -1 and i < end:
            end = i
    head = content[:end]
    lines = re.split(rb"\r?\n", head)
    want = name.lower().encode("ascii") + b":"
    value = None
    for line in lines:
        if value is not None:
            if line[:1] in (b" ", b"\t"):
                value += b" " + line.strip()
                continue
            break
        if line.lower().startswith(want):
            value = line[len(want):].strip()
    if value is None:
        return None
    return value.decode("utf-8", errors="replace")


class Ledger:
    """aiosmtpd handler that applies the recipient triggers and records messages."""

    def __init__(self, directory, users):
        self.dir = directory
        self.users = users
        self.flaky = {}
        os.makedirs(directory, exist_ok=True)
        self.index_path = os.path.join(directory, "index.jsonl")
        self.n = 0
        if os.path.exists(self.index_path):
            with open(self.index_path, "rb") as f:
                self.n = sum(1 for line in f if line.endswith(b"\n"))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 Temporary failure requested by the recipient address"
        if local.startswith("reject"):
            return "550 5.1.1 Recipient refused as requested by the address"
        m = FLAKY.match(local)
        if m:
            key = address.lower()
            seen = self.flaky.get(key, 0)
            if seen < int(m.group(2)):
                self.flaky[key] = seen + 1
                if m.group(1) == "421":
                    asyncio.get_running_loop().call_soon(server.transport.close)
                    return "421 4.3.2 Service not available, closing transmission channel"
                return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or b""
        self.n += 1
        n = self.n
        name = "%d.eml" % n
        tmp = os.path.join(self.dir, ".%d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.dir, name))
        peer = session.peer
        entry = {
            "n": n,
            "file": name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message_id": header_value(content, "Message-ID"),
            "x_test_id": header_value(content, "X-Test-ID"),
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "smtp_utf8": bool(envelope.smtp_utf8),
            "tls": server._tls_protocol is not None,
            "auth": session.auth_data if session.authenticated else None,
            "peer": "%s:%s" % (peer[0], peer[1]) if isinstance(peer, tuple) else str(peer),
            "time": time.time(),
        }
        with open(self.index_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return "250 2.0.0 OK ledger %d" % n


def make_authenticator(users):
    """Accept PLAIN/LOGIN credentials that match the users table."""

    def authenticate(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    return authenticate


def read_users(path):
    """Read 'name:password' lines."""
    users = {}
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#") and ":" in line:
                    name, password = line.split(":", 1)
                    users[name] = password
    return users


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2526)
    p.add_argument("--dir", required=True, help="ledger directory")
    p.add_argument("--cert", help="PEM certificate (chain) for STARTTLS")
    p.add_argument("--key", help="PEM private key for STARTTLS")
    p.add_argument("--users", required=True, help="file of name:password lines for AUTH")
    p.add_argument("--hostname", default="ledger.interop.test")
    p.add_argument("--size-limit", type=int, default=64 * 1024 * 1024)
    p.add_argument("--pidfile")
    args = p.parse_args()

    tls = None
    if args.cert and args.key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.cert, args.key)

    users = read_users(args.users)
    if not users:
        p.error("--users must name a file with at least one name:password line")
    handler = Ledger(args.dir, users)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return SMTP(
            handler,
            hostname=args.hostname,
            ident="mailwire interop ledger (aiosmtpd)",
            data_size_limit=args.size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=tls,
            require_starttls=False,
            auth_require_tls=True,
            authenticator=make_authenticator(users),
            loop=loop,
        )

    server = loop.run_until_complete(
        loop.create_server(factory, host=args.host, port=args.port, reuse_address=True)
    )
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print("ledger listening on %s:%d, writing %s" % (args.host, args.port, args.dir), flush=True)
    try:
        loop.run_until_complete(stop)
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

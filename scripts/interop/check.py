#!/usr/bin/python3
"""Checks of the interop servers that swaks cannot do (part of check.sh).

SCRAM-SHA-1/SCRAM-SHA-256 against Dovecot's submission service, LMTP to Dovecot
over its Unix socket and TCP (per-recipient replies, over-quota and unknown users,
two transactions on one connection), SMTPUTF8 delivery, byte-exact delivery into
the maildirs, the aiosmtpd ledger and its recipient triggers, and the TLS
listeners with bad certificates or old protocol versions.

Usage: check.py ENV_FILE RUN_ID   (run by check.sh with Debian's /usr/bin/python3)
Prints one "PASS name" or "FAIL name: why" line per check, then "check.py: done".
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import smtplib
import socket
import ssl
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

PASSED = []
FAILED = []


def result(ok, name, why=""):
    if ok:
        PASSED.append(name)
        print("PASS  %s" % name, flush=True)
    else:
        FAILED.append(name)
        print("FAIL  %s: %s" % (name, why), flush=True)


def check(name):
    """Decorator: run the function, turning exceptions into a failed check."""

    def wrap(fn):
        def run(*a, **kw):
            try:
                fn(*a, **kw)
            except Exception as e:  # noqa: BLE001 - report any error as a failure
                result(False, name, "%s: %s" % (type(e).__name__, e))

        run.__name__ = fn.__name__
        return run

    return wrap


def load_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k] = v
    return env


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def maildir_find(md, marker, timeout=15.0):
    """Wait for messages containing marker in md/new or md/cur; return their bytes."""
    deadline = time.monotonic() + timeout
    m = marker.encode()
    while True:
        found = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for name in names:
                try:
                    with open(os.path.join(d, name), "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                if m in data:
                    found.append(data)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


ADDED = re.compile(rb"^(return-path|delivered-to|received|x-original-to):", re.IGNORECASE)


def strip_added(delivered):
    """Remove the header fields a server prepends (with their folded lines)."""
    lines = delivered.split(b"\n")
    i = 0
    while i < len(lines) and ADDED.match(lines[i]):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\n".join(lines[i:])


def same_as_sent(delivered, original):
    """Maildir files hold LF line ends; compare with the CRLF original."""
    return strip_added(delivered) == original.replace(b"\r\n", b"\n")


def message(marker, body=b"Hello from check.py.\r\n", extra=b""):
    return (
        b"From: Check <check@example.test>\r\n"
        b"To: Someone <someone@interop.test>\r\n"
        b"Subject: interop check " + marker.encode() + b"\r\n"
        b"Message-ID: <" + marker.encode() + b"@check.interop.test>\r\n"
        b"X-Test-ID: " + marker.encode() + b"\r\n" + extra + b"\r\n" + body
    )


class Scram:
    """Client side of SCRAM (RFC 5802 / RFC 7677) without channel binding, as an
    smtplib.SMTP.auth authobject: called with no argument for the initial response,
    then with each decoded challenge."""

    def __init__(self, hash_name, user, password):
        self.h = hash_name
        self.user = user
        self.password = password.encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.step = 0
        self.server_signature = None
        self.verified = False

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.h).digest()

    def __call__(self, challenge=None):
        if self.step == 0:
            self.step = 1
            self.client_first_bare = "n=%s,r=%s" % (self.user, self.nonce)
            return "n,," + self.client_first_bare
        if self.step == 1:
            self.step = 2
            server_first = challenge.decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            if not attrs["r"].startswith(self.nonce):
                raise ValueError("server nonce does not extend ours")
            salt = base64.b64decode(attrs["s"])
            iterations = int(attrs["i"])
            salted = hashlib.pbkdf2_hmac(self.h, self.password, salt, iterations)
            client_key = self._hmac(salted, b"Client Key")
            stored_key = hashlib.new(self.h, client_key).digest()
            without_proof = "c=%s,r=%s" % (base64.b64encode(b"n,,").decode(), attrs["r"])
            auth_message = ",".join((self.client_first_bare, server_first, without_proof)).encode()
            signature = self._hmac(stored_key, auth_message)
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            server_key = self._hmac(salted, b"Server Key")
            self.server_signature = self._hmac(server_key, auth_message)
            return without_proof + ",p=" + base64.b64encode(proof).decode()
        # step 2: server-final-message "v=..." (answered with an empty response)
        final = challenge.decode()
        if final.startswith("v="):
            self.verified = hmac.compare_digest(base64.b64decode(final[2:]), self.server_signature)
        return ""


def tls_context(env):
    ctx = ssl.create_default_context(cafile=env["CA_FILE"])
    return ctx


def main():
    env = load_env(sys.argv[1])
    run = sys.argv[2] if len(sys.argv) > 2 else str(int(time.time()))
    dom = env["DOMAIN"]
    ldom = env["LMTP_DOMAIN"]
    vroot = env["VIRTUAL_MAILDIR_ROOT"]
    droot = env["DOVECOT_MAILDIR_ROOT"]
    pw = {u: env[u.upper() + "_PASSWORD"] for u in env["USERS"].split()}

    # --- SCRAM through Dovecot's submission service -----------------------------------
    @check("Dovecot submission: no AUTH before STARTTLS, SCRAM-SHA-1/SCRAM-SHA-256 after")
    def dovecot_ehlo():
        with smtplib.SMTP(*hostport(env["DOVECOT_SUBMISSION"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            before = s.esmtp_features.get("auth", "")
            early = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0" + pw["alice"].encode()).decode())
            s.starttls(context=tls_context(env))
            s.ehlo("check.interop.test")
            mechs = s.esmtp_features.get("auth", "").upper().split()
        ok = {"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN", "LOGIN", "CRAM-MD5"} <= set(mechs)
        ok = ok and before.strip() == "" and 500 <= early[0] < 600
        result(ok, "Dovecot submission: no AUTH before STARTTLS, SCRAM-SHA-1/SCRAM-SHA-256 after",
               "before STARTTLS: %r, AUTH then: %r; after STARTTLS: %r" % (before, early, mechs))

    def scram_send(addr, mech, user, password, rcpt, marker):
        hash_name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
        with smtplib.SMTP(*hostport(addr), timeout=20) as s:
            s.ehlo("check.interop.test")
            s.starttls(context=tls_context(env))
            s.ehlo("check.interop.test")
            scram = Scram(hash_name, user, password)
            code, text = s.auth(mech, scram)
            if not scram.verified:
                raise AssertionError("server signature missing or wrong (reply %d %r)" % (code, text))
            if marker:
                s.sendmail("%s@%s" % (user, dom), [rcpt], message(marker))
            return code

    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        name = "Dovecot submission %s login and delivery through Postfix" % mech

        @check(name)
        def scram_ok(mech=mech, name=name):
            marker = "scram-%s-%s" % (mech.lower(), run)
            scram_send(env["DOVECOT_SUBMISSION"], mech, "alice", pw["alice"], "bob@" + dom, marker)
            got = maildir_find(os.path.join(vroot, "bob"), marker)
            result(len(got) == 1, name, "found %d copies in bob's maildir" % len(got))

        scram_ok()

        name = "Dovecot submission %s wrong password refused 535" % mech

        @check(name)
        def scram_bad(mech=mech, name=name):
            try:
                scram_send(env["DOVECOT_SUBMISSION"], mech, "alice", "wrong-password", None, None)
            except smtplib.SMTPAuthenticationError as e:
                result(e.smtp_code == 535, name, "got %r" % (e.args,))
                return
            result(False, name, "authentication succeeded")

        scram_bad()

    dovecot_ehlo()

    name = "Postfix submission SCRAM-SHA-256 through Dovecot SASL"

    @check(name)
    def postfix_scram():
        marker = "pf-scram-" + run
        scram_send(env["POSTFIX_SUBMISSION"], "SCRAM-SHA-256", "carol", pw["carol"], "alice@" + dom, marker)
        got = maildir_find(os.path.join(vroot, "alice"), marker)
        result(len(got) == 1, name, "found %d copies" % len(got))

    postfix_scram()

    # --- LMTP to Dovecot -------------------------------------------------------------------
    def lmtp_transaction(s, sender, rcpts, msg):
        """One LMTP transaction; returns (rcpt replies, per-recipient data replies)."""
        code, text = s.mail(sender)
        if code != 250:
            raise AssertionError("MAIL: %d %r" % (code, text))
        rcpt_replies = [s.rcpt(r) for r in rcpts]
        accepted = [r for r, (c, _) in zip(rcpts, rcpt_replies) if c == 250]
        data_replies = {}
        if accepted:
            code, text = s.data(msg)  # reply for the first accepted recipient
            data_replies[accepted[0]] = (code, text)
            for r in accepted[1:]:
                data_replies[r] = s.getreply()
        return rcpt_replies, data_replies

    name = "LMTP (Unix socket): alice 250, dave over quota 552 5.2.2, unknown 550 at RCPT"

    @check(name)
    def lmtp_quota():
        marker = "lmtp-unix-" + run
        big = (b"0123456789abcdef" * 4 + b"\r\n") * 64  # about 4 KiB > dave's 1 KiB quota
        msg = message(marker, body=b".leading dot line\r\n" + big)
        rcpts = ["alice@" + ldom, "dave@" + ldom, "nobody@" + ldom]
        with smtplib.LMTP(env["DOVECOT_LMTP_SOCKET"], timeout=20) as s:
            code, _ = s.ehlo("check.interop.test")  # smtplib sends LHLO for LMTP
            caps = dict(s.esmtp_features)
            rr, dr = lmtp_transaction(s, "sender@example.test", rcpts, msg)
        codes = [c for c, _ in rr]
        ok = codes[:2] == [250, 250] and rr[2][0] == 550 and b"5.1.1" in rr[2][1]
        ok = ok and dr.get(rcpts[0], (0,))[0] == 250
        dave = dr.get(rcpts[1], (0, b""))
        ok = ok and dave[0] == 552 and b"5.2.2" in dave[1]
        result(ok, name, "rcpt=%r data=%r" % (rr, dr))
        got = maildir_find(os.path.join(droot, ldom, "alice"), marker)
        result(len(got) == 1 and same_as_sent(got[0], msg),
               "LMTP: alice's copy is byte-identical apart from added headers",
               "copies=%d" % len(got))
        print("INFO  Dovecot LHLO capabilities: %s" % " ".join(sorted(caps)))
        result("smtputf8" not in caps, "Dovecot 2.3 LMTP does not offer SMTPUTF8 (as documented)",
               "it does now: %r" % caps)

    lmtp_quota()

    name = "LMTP (TCP): two transactions on one connection"

    @check(name)
    def lmtp_tcp():
        m1, m2 = "lmtp-tcp1-" + run, "lmtp-tcp2-" + run
        host, port = hostport(env["DOVECOT_LMTP_TCP"])
        with smtplib.LMTP(host, port, timeout=20) as s:
            s.ehlo("check.interop.test")
            r1 = lmtp_transaction(s, "a@example.test", ["bob@" + ldom], message(m1))
            r2 = lmtp_transaction(s, "b@example.test", ["bob@" + ldom, "carol@" + ldom], message(m2))
        ok = all(c == 250 for c, _ in r1[1].values()) and len(r2[1]) == 2 and all(
            c == 250 for c, _ in r2[1].values())
        got1 = maildir_find(os.path.join(droot, ldom, "bob"), m1)
        got2 = maildir_find(os.path.join(droot, ldom, "carol"), m2)
        result(ok and len(got1) == 1 and len(got2) == 1, name, "replies %r %r" % (r1, r2))

    lmtp_tcp()

    # --- SMTPUTF8 and byte-exact delivery through Postfix virtual(8) ----------------------
    name = "SMTPUTF8: UTF-8 sender and recipient delivered by Postfix virtual(8)"

    @check(name)
    def utf8():
        marker = "utf8-" + run
        body = "Grüße, ¡olé! ✓\r\n".encode()
        msg = message(marker, body=body, extra="Subject2: Müller\r\n".encode())
        with smtplib.SMTP(*hostport(env["POSTFIX_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            if not s.has_extn("smtputf8"):
                raise AssertionError("SMTPUTF8 not offered")
            s.sendmail("sénder@example.test", [env["UTF8_ADDRESS"]], msg,
                       mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        got = maildir_find(os.path.join(vroot, env["UTF8_USER"]), marker)
        result(len(got) == 1 and same_as_sent(got[0], msg), name, "copies=%d" % len(got))

    utf8()

    name = "byte-exact delivery through Postfix (dots, 998-octet line, 8-bit)"

    @check(name)
    def exact():
        marker = "exact-" + run
        body = (b".\r\n..\r\n.leading\r\n\r\n.\r\nx" + b"y" * 997 + b"\r\n"
                + "8-bit: café\r\n".encode() + b"no final newline")
        msg = message(marker, body=body)
        with smtplib.SMTP(*hostport(env["POSTFIX_SMTP"]), timeout=20) as s:
            s.sendmail("sender@example.test", ["alice@" + dom], msg, mail_options=["BODY=8BITMIME"])
        got = maildir_find(os.path.join(vroot, "alice"), marker)
        # smtplib adds the final CRLF the message lacks; so does every SMTP client.
        result(len(got) == 1 and same_as_sent(got[0], msg + b"\r\n"), name, "copies=%d" % len(got))

    exact()

    # --- ledger -------------------------------------------------------------------------------
    def ledger_entries():
        with open(os.path.join(env["LEDGER_DIR"], "index.jsonl"), encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    name = "ledger: tempfail 451 and reject 550 at RCPT, accepted recipient recorded once"

    @check(name)
    def ledger():
        marker = "ledger-" + run
        msg = message(marker)
        with smtplib.SMTP(*hostport(env["LEDGER_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            if s.has_extn("pipelining"):
                raise AssertionError("ledger must not offer PIPELINING")
            refused = s.sendmail("sender@example.test",
                                 ["alice@example.test", "tempfail@example.test", "reject@example.test"], msg)
        ok = refused.get("tempfail@example.test", (0,))[0] == 451 and \
            refused.get("reject@example.test", (0,))[0] == 550
        mid = "<%s@check.interop.test>" % marker
        hits = [e for e in ledger_entries() if e["message_id"] == mid]
        ok = ok and len(hits) == 1 and hits[0]["rcpt_tos"] == ["alice@example.test"]
        if hits:
            with open(os.path.join(env["LEDGER_DIR"], hits[0]["file"]), "rb") as f:
                ok = ok and f.read() == msg  # msg ends in CRLF: stored exactly as sent
        result(ok, name, "refused=%r entries=%r" % (refused, hits))

    ledger()

    name = "ledger: STARTTLS + AUTH PLAIN recorded"

    @check(name)
    def ledger_tls():
        marker = "ledger-tls-" + run
        with smtplib.SMTP(*hostport(env["LEDGER_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            if s.has_extn("auth"):
                raise AssertionError("AUTH offered before STARTTLS")
            s.starttls(context=tls_context(env))
            s.login("bob", pw["bob"])
            s.sendmail("bob@example.test", ["x@example.test"], message(marker))
        hits = [e for e in ledger_entries() if e["x_test_id"] == marker]
        result(len(hits) == 1 and hits[0]["tls"] and hits[0]["auth"] == "bob", name, repr(hits))

    ledger_tls()

    name = "ledger: flaky451-2 refused twice then accepted; flaky421-1 closes once"

    @check(name)
    def ledger_flaky():
        rcpt = "flaky451-2-%s@example.test" % run
        codes = []
        with smtplib.SMTP(*hostport(env["LEDGER_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            for _ in range(3):
                s.mail("sender@example.test")
                codes.append(s.rcpt(rcpt)[0])
                s.rset()
        rcpt421 = "flaky421-1-%s@example.test" % run
        with smtplib.SMTP(*hostport(env["LEDGER_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            s.mail("sender@example.test")
            c421 = s.rcpt(rcpt421)[0]
            try:
                closed = s.noop()[0] != 250
            except smtplib.SMTPServerDisconnected:
                closed = True
        with smtplib.SMTP(*hostport(env["LEDGER_SMTP"]), timeout=20) as s:
            s.ehlo("check.interop.test")
            s.mail("sender@example.test")
            after = s.rcpt(rcpt421)[0]
        result(codes == [451, 451, 250] and c421 == 421 and closed and after == 250, name,
               "451 run %r, 421 %r closed=%r, then %r" % (codes, c421, closed, after))

    ledger_flaky()

    # --- TLS edge listeners ---------------------------------------------------------------------
    def starttls_error(addr, ctx):
        with smtplib.SMTP(*hostport(addr), timeout=20) as s:
            s.ehlo("check.interop.test")
            try:
                s.starttls(context=ctx)
            except ssl.SSLError as e:
                return e
            return None

    for key, want in (("POSTFIX_UNTRUSTED_CERT_SMTP", "unable to get local issuer certificate"),
                      ("POSTFIX_EXPIRED_CERT_SMTP", "certificate has expired"),
                      ("POSTFIX_WRONG_HOST_CERT_SMTP", "mismatch, certificate is not valid")):
        name = "%s: verification fails with %r" % (key, want)

        @check(name)
        def bad_cert(key=key, want=want, name=name):
            # smtplib uses the host it connected to (127.0.0.1) as the name to verify;
            # the good certificate has that IP in its SAN, the wrong-host one does not.
            e = starttls_error(env[key], tls_context(env))
            result(e is not None and want in str(e), name, "got %r" % (e,))

        bad_cert()

    name = "POSTFIX_OLD_TLS_SMTP: TLS 1.0/1.1 only, refused by a TLS 1.2+ client"

    @check(name)
    def old_tls():
        e = starttls_error(env["POSTFIX_OLD_TLS_SMTP"], tls_context(env))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with smtplib.SMTP(*hostport(env["POSTFIX_OLD_TLS_SMTP"]), timeout=20) as s:
            s.ehlo("x")
            s.starttls(context=ctx)
            version = s.sock.version()
        result(e is not None and version in ("TLSv1", "TLSv1.1"), name,
               "modern client error %r, legacy client got %r" % (e, version))

    old_tls()

    name = "POSTFIX_SMTPS verifies with CA_FILE and the name localhost"

    @check(name)
    def smtps_ok():
        with smtplib.SMTP_SSL("localhost", hostport(env["POSTFIX_SMTPS"])[1],
                              context=tls_context(env), timeout=20) as s:
            code, _ = s.ehlo("x")
            v = s.sock.version()
        result(code == 250 and v in ("TLSv1.2", "TLSv1.3"), name, "%r %r" % (code, v))

    smtps_ok()

    print("check.py: done (%d passed, %d failed)" % (len(PASSED), len(FAILED)))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

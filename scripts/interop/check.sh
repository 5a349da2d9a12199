#!/usr/bin/env bash
# Smoke test of the interop servers started by start.sh: every listener, every kind of
# refusal the tests rely on, and delivery into the maildirs and the ledger.
# SMTP, STARTTLS, implicit TLS and AUTH PLAIN/LOGIN/CRAM-MD5 are driven with swaks;
# SCRAM, LMTP, the ledger and the certificate checks with check.py (Debian's python3).
#
# Usage: check.sh [DIR]   (default /tmp/mailwire-interop; reads DIR/env)
# Exit status 0 when every check passed. Prints "N passed, N failed" at the end.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=$(realpath -m "${1:-/tmp/mailwire-interop}")
ENV_FILE=$DIR/env
[ -r "$ENV_FILE" ] || { echo "interop/check: no $ENV_FILE: run start.sh first" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_FILE"
command -v swaks >/dev/null || { echo "interop/check: swaks missing: run install.sh" >&2; exit 1; }

LOGDIR=$DIR/logs/check
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
passed=0
failed=0
RUN=$$-$(date +%s)

pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; [ -n "${2:-}" ] && sed 's/^/      | /' "$2" | tail -25; }

# swaks_case NAME EXPECT-REGEX [swaks args...]: run swaks and require its transcript to
# match the extended regular expression (for example a reply code at a given step).
n=0
swaks_case() {
  local name=$1 expect=$2
  shift 2
  n=$((n + 1))
  local out=$LOGDIR/swaks-$n.txt
  swaks --timeout 20 --hide-informational "$@" >"$out" 2>&1
  if grep -Eq -- "$expect" "$out"; then pass "$name"; else fail "$name (wanted /$expect/)" "$out"; fi
}

# wait_maildir NAME MAILDIR MARKER: the message with MARKER must appear in MAILDIR/new
# or MAILDIR/cur within 15 seconds (delivery is asynchronous), exactly once.
wait_maildir() {
  local name=$1 md=$2 marker=$3 i count=0
  for ((i = 0; i < 150; i++)); do
    count=$(grep -rlF -- "$marker" "$md/new" "$md/cur" 2>/dev/null | wc -l)
    [ "$count" -ge 1 ] && break
    sleep 0.1
  done
  if [ "$count" -eq 1 ]; then
    pass "$name"
  else
    printf '%s\n' "--- maillog tail" >"$LOGDIR/maildir-$marker.txt"
    tail -20 "$POSTFIX_LOG" >>"$LOGDIR/maildir-$marker.txt" 2>/dev/null
    fail "$name (found $count copies of $marker in $md)" "$LOGDIR/maildir-$marker.txt"
  fi
}

V=$VIRTUAL_MAILDIR_ROOT
TLSV=(--tls-verify --tls-ca-path "$CA_FILE")

echo "== Postfix $POSTFIX_SMTP (plain, STARTTLS offered, no AUTH)"
m=plain-$RUN
swaks_case "plain SMTP delivers" '<-  250 2\.0\.0 Ok: queued' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "alice@$DOMAIN" \
  --header "Message-ID: <$m@check.interop.test>" --header "X-Test-ID: $m"
wait_maildir "plain SMTP: message in alice's maildir" "$V/alice" "$m"
swaks_case "EHLO offers STARTTLS, PIPELINING, SIZE 10485760, SMTPUTF8, CHUNKING, no AUTH" \
  '250-STARTTLS' --server "$POSTFIX_SMTP" --quit-after EHLO
if grep -q 'AUTH' "$LOGDIR/swaks-$n.txt" || ! grep -q 'SIZE 10485760' "$LOGDIR/swaks-$n.txt" ||
  ! grep -q 'SMTPUTF8' "$LOGDIR/swaks-$n.txt" || ! grep -q 'CHUNKING' "$LOGDIR/swaks-$n.txt"; then
  fail "port $POSTFIX_SMTP capabilities" "$LOGDIR/swaks-$n.txt"
fi
m=starttls-$RUN
swaks_case "STARTTLS with a verified certificate delivers" '<~  250 2\.0\.0 Ok: queued' \
  --server "$POSTFIX_SMTP" --tls "${TLSV[@]}" -f sender@example.test -t "bob@$DOMAIN" \
  --header "Message-ID: <$m@check.interop.test>" --header "X-Test-ID: $m"
wait_maildir "STARTTLS: message in bob's maildir" "$V/bob" "$m"
swaks_case "reject@ refused 550 5.7.1 at RCPT" '<\*\* 550 5\.7\.1' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "$REJECT_RCPT" --quit-after RCPT
swaks_case "tempfail@ refused 450 4.2.0 at RCPT" '<\*\* 450 4\.2\.0' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "$TEMPFAIL_RCPT" --quit-after RCPT
swaks_case "reject+tag@ refused 550 5.7.1 too" '<\*\* 550 5\.7\.1' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "reject+x1@$DOMAIN" --quit-after RCPT
swaks_case "unknown user refused 550 5.1.1 at RCPT" '<\*\* 550 5\.1\.1' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "$UNKNOWN_RCPT" --quit-after RCPT
swaks_case "badsender refused 553 5.7.1 at MAIL" '<\*\* 553 5\.7\.1' \
  --server "$POSTFIX_SMTP" -f "$BAD_SENDER" -t "alice@$DOMAIN" --quit-after MAIL
swaks_case "other domains refused (no relaying)" '<\*\* 554 5\.7\.1' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t someone@example.org --quit-after RCPT
m=lmtp-relay-$RUN
swaks_case "lmtp.interop.test accepted for Dovecot" '<-  250 2\.0\.0 Ok: queued' \
  --server "$POSTFIX_SMTP" -f sender@example.test -t "carol@$LMTP_DOMAIN" \
  --header "Message-ID: <$m@check.interop.test>" --header "X-Test-ID: $m"
wait_maildir "Postfix to Dovecot over LMTP: message in carol's Dovecot maildir" \
  "$DOVECOT_MAILDIR_ROOT/$LMTP_DOMAIN/carol" "$m"

echo "== Postfix $POSTFIX_SUBMISSION (submission: STARTTLS required, AUTH via Dovecot)"
swaks_case "no AUTH before STARTTLS" '<-  250 ' --server "$POSTFIX_SUBMISSION" --quit-after EHLO
if grep -q 'AUTH' "$LOGDIR/swaks-$n.txt"; then fail "AUTH offered in clear on $POSTFIX_SUBMISSION" "$LOGDIR/swaks-$n.txt"; fi
swaks_case "MAIL without STARTTLS refused 530 5.7.0" '<\*\* 530 5\.7\.0' \
  --server "$POSTFIX_SUBMISSION" -f alice@interop.test -t "bob@$DOMAIN" --quit-after MAIL
for mech in PLAIN LOGIN CRAM-MD5; do
  m=sub-$mech-$RUN
  swaks_case "submission STARTTLS + AUTH $mech delivers" '<~  250 2\.0\.0 Ok: queued' \
    --server "$POSTFIX_SUBMISSION" --tls "${TLSV[@]}" --auth "$mech" --auth-user alice \
    --auth-password "$ALICE_PASSWORD" -f "alice@$DOMAIN" -t "carol@$DOMAIN" \
    --header "Message-ID: <$m@check.interop.test>" --header "X-Test-ID: $m"
  wait_maildir "submission AUTH $mech: message in carol's maildir" "$V/carol" "$m"
done
swaks_case "wrong password refused 535" '<~\*+ 535 5\.7\.8' \
  --server "$POSTFIX_SUBMISSION" --tls "${TLSV[@]}" --auth PLAIN --auth-user alice \
  --auth-password wrong-password -f "alice@$DOMAIN" -t "carol@$DOMAIN" --quit-after AUTH
swaks_case "unauthenticated RCPT refused 554 5.7.1" '<~\*+ 554 5\.7\.1' \
  --server "$POSTFIX_SUBMISSION" --tls "${TLSV[@]}" -f "alice@$DOMAIN" -t "carol@$DOMAIN" --quit-after RCPT

echo "== Postfix $POSTFIX_SMTPS (implicit TLS, AUTH via Dovecot)"
for mech in PLAIN LOGIN CRAM-MD5; do
  m=smtps-$mech-$RUN
  swaks_case "implicit TLS + AUTH $mech delivers" '<~  250 2\.0\.0 Ok: queued' \
    --server "$POSTFIX_SMTPS" --tls-on-connect "${TLSV[@]}" --auth "$mech" --auth-user bob \
    --auth-password "$BOB_PASSWORD" -f "bob@$DOMAIN" -t "dave@$DOMAIN" \
    --header "Message-ID: <$m@check.interop.test>" --header "X-Test-ID: $m"
  wait_maildir "implicit TLS AUTH $mech: message in dave's maildir" "$V/dave" "$m"
done
swaks_case "implicit TLS wrong password refused 535" '<~\*+ 535 5\.7\.8' \
  --server "$POSTFIX_SMTPS" --tls-on-connect "${TLSV[@]}" --auth LOGIN --auth-user bob \
  --auth-password wrong-password -f "bob@$DOMAIN" -t "dave@$DOMAIN" --quit-after AUTH

echo "== bad certificates (swaks with verification on must refuse each)"
# swaks 20201014 verifies the chain and dates but not the host name: the wrong-host
# listener is checked by check.py.
for pair in "untrusted:$POSTFIX_UNTRUSTED_CERT_SMTP" "expired:$POSTFIX_EXPIRED_CERT_SMTP"; do
  swaks_case "${pair%%:*} certificate refused by a verifying client" '\*\*\* TLS startup failed.*certificate verify failed' \
    --server "${pair#*:}" --tls "${TLSV[@]}" --quit-after TLS
done

echo "== smtp-sink $SINK_SMTP"
if [ -n "$SINK_SMTP" ]; then
  swaks_case "smtp-sink accepts and discards" '<-  250 2\.0\.0 Ok' \
    --server "$SINK_SMTP" -f sender@example.test -t anyone@example.test --pipeline
fi

echo "== check.py: SCRAM, LMTP, UTF-8, ledger, byte-exact delivery, TLS versions"
/usr/bin/python3 "$HERE/check.py" "$ENV_FILE" "$RUN" >"$LOGDIR/check-py.txt" 2>&1
cat "$LOGDIR/check-py.txt"
py_pass=$(grep -c '^PASS' "$LOGDIR/check-py.txt")
py_fail=$(grep -c '^FAIL' "$LOGDIR/check-py.txt")
passed=$((passed + py_pass))
failed=$((failed + py_fail))
if ! grep -q '^check.py: done' "$LOGDIR/check-py.txt"; then
  failed=$((failed + 1))
  echo "FAIL  check.py did not finish"
fi

echo
echo "interop check: ${passed} passed, ${failed} failed (transcripts in $LOGDIR)"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

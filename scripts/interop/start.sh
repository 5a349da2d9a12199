#!/usr/bin/env bash
# Starts mailwire's private interop servers, on loopback only, under one directory:
#   - a private Postfix instance (plain+STARTTLS, submission, implicit TLS, and listeners
#     presenting bad certificates), delivering interop.test with virtual(8) to maildirs
#     and lmtp.interop.test to Dovecot over LMTP;
#   - a private Dovecot instance (LMTP on a Unix socket and TCP with a quota plugin,
#     SASL for Postfix, and its submission service for SCRAM);
#   - the aiosmtpd delivery ledger (ledger.py);
#   - Postfix's smtp-sink.
# It writes DIR/env (KEY='value' lines) describing all of it, and waits until every
# listener answers. The system's own Postfix and Dovecot are never touched.
#
# Usage: start.sh [DIR]            (default /tmp/mailwire-interop)
# Environment:
#   MAILWIRE_INTEROP_PORT_OFFSET   added to every TCP port (default 0), to run a second set
#   MAILWIRE_INTEROP_NO_SINK=1     do not start smtp-sink
#   MAILWIRE_INTEROP_WAIT          seconds to wait for the listeners (default 30)
#
# If DIR already holds a running set, it is stopped first (stop.sh) and DIR is rebuilt:
# every start begins with empty maildirs and an empty ledger.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=$(realpath -m "${1:-/tmp/mailwire-interop}")
OFF=${MAILWIRE_INTEROP_PORT_OFFSET:-0}
WAIT=${MAILWIRE_INTEROP_WAIT:-30}
PY=/usr/bin/python3
MARKER=.mailwire-interop

log() { printf 'interop/start: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix and Dovecot instances need it)"
for bin in postfix dovecot smtp-sink openssl; do
  command -v "$bin" >/dev/null || die "$bin not found: run scripts/interop/install.sh"
done
$PY -c 'import aiosmtpd' 2>/dev/null || die "aiosmtpd missing for $PY: run scripts/interop/install.sh"
# Unix socket paths are limited to 107 bytes; leave room for Dovecot's own names.
[ "${#DIR}" -le 60 ] || die "DIR path too long for Unix sockets (max 60 characters): $DIR"

port() { echo $(($1 + OFF)); }
P_SMTP=$(port 2525)
P_SUBMISSION=$(port 2587)
P_SMTPS=$(port 2465)
P_UNTRUSTED=$(port 2591)
P_EXPIRED=$(port 2592)
P_WRONGHOST=$(port 2593)
P_OLDTLS=$(port 2594)
P_LMTP=$(port 2424)
P_DSUBMISSION=$(port 2588)
DSUB_HOST=127.0.0.2
P_LEDGER=$(port 2526)
P_SINK=$(port 2527)

START_TS=$(date +%s.%N)
PHASE_TS=$START_TS
TIMINGS=""
phase() { # record how long the previous phase took
  local now
  now=$(date +%s.%N)
  TIMINGS="$TIMINGS $1=$(awk "BEGIN { printf \"%.1f\", $now - $PHASE_TS }")s"
  PHASE_TS=$now
}

# --- stop a previous run, rebuild DIR ------------------------------------------------
if [ -e "$DIR/$MARKER" ]; then
  log "stopping the previous run in $DIR"
  bash "$HERE/stop.sh" "$DIR" || true
  rm -rf "$DIR"
elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
  die "$DIR exists, is not empty and was not made by start.sh: refusing to use it"
fi

# Refuse to start over someone else's listener (another DIR, or a system daemon).
busy=""
for p in $P_SMTP $P_SUBMISSION $P_SMTPS $P_UNTRUSTED $P_EXPIRED $P_WRONGHOST $P_OLDTLS \
  $P_LMTP $P_DSUBMISSION $P_LEDGER $P_SINK; do
  if command -v ss >/dev/null && ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then busy="$busy $p"; fi
done
[ -z "$busy" ] || die "TCP port(s) already in use:$busy (ss -ltnp shows by whom; another DIR? use MAILWIRE_INTEROP_PORT_OFFSET)"

phase stop-previous
mkdir -p "$DIR"
chmod 0755 "$DIR"
echo "made by mailwire scripts/interop/start.sh; stop with stop.sh $DIR" >"$DIR/$MARKER"
mkdir -p "$DIR"/{tls,run,logs,ledger,postfix,dovecot,mail/virtual,mail/dovecot,mail/dovecot-home}
chown mail:mail "$DIR/mail/virtual" "$DIR/mail/dovecot" "$DIR/mail/dovecot-home"
chmod 0755 "$DIR/mail" "$DIR/mail/virtual" "$DIR/mail/dovecot" "$DIR/mail/dovecot-home"

# --- users -------------------------------------------------------------------------
USERS=(alice bob carol dave)
declare -A PASS=(
  [alice]=alice-secret-PW1
  [bob]=bob-secret-PW2
  [carol]=carol-secret-PW3
  [dave]=dave-secret-PW4
)
DOMAIN=interop.test
LMTP_DOMAIN=lmtp.interop.test
UTF8_ADDR="josé@$DOMAIN"

# --- certificates ------------------------------------------------------------------
T=$DIR/tls
gen_tls() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  cd "$T"
  # Trusted CA and the server certificate every listener presents.
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 365 -sha256 \
    -subj "/O=mailwire interop/CN=mailwire interop test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  cat >server.ext <<EOT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:mx.interop.test,IP:127.0.0.1,IP:127.0.0.2
EOT
  openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/O=mailwire interop/CN=localhost"
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile server.ext -out server.pem
  # A client certificate (for SASL EXTERNAL or TLS client-auth tests), signed by the CA.
  cat >client.ext <<EOT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=email:alice@interop.test
EOT
  openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/O=mailwire interop/CN=alice"
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile client.ext -out client.pem
  # Second, untrusted CA and a certificate with the right names signed by it.
  openssl req -x509 "${ec[@]}" -keyout untrusted-ca.key -out untrusted-ca.pem -days 365 -sha256 \
    -subj "/O=mailwire interop/CN=mailwire interop UNTRUSTED CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  openssl req "${ec[@]}" -keyout untrusted.key -out untrusted.csr -subj "/O=mailwire interop/CN=localhost"
  openssl x509 -req -in untrusted.csr -CA untrusted-ca.pem -CAkey untrusted-ca.key -CAcreateserial \
    -days 365 -sha256 -extfile server.ext -out untrusted.pem
  # Signed by the trusted CA, right names, but for another host.
  cat >wronghost.ext <<EOT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:wrong-host.interop.invalid
EOT
  openssl req "${ec[@]}" -keyout wronghost.key -out wronghost.csr -subj "/O=mailwire interop/CN=wrong-host.interop.invalid"
  openssl x509 -req -in wronghost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile wronghost.ext -out wronghost.pem
  # Signed by the trusted CA, right names, expired (valid during 2020 only): openssl x509
  # cannot set dates in the past in OpenSSL 3.0, "openssl ca" can.
  mkdir -p expired-ca
  : >expired-ca/index.txt
  echo 1000 >expired-ca/serial
  cat >expired-ca/ca.cnf <<EOT
[ca]
default_ca = interop
[interop]
dir = $T/expired-ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $T/ca.pem
private_key = $T/ca.key
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
commonName = supplied
[ext]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:mx.interop.test,IP:127.0.0.1,IP:127.0.0.2
EOT
  openssl req "${ec[@]}" -keyout expired.key -out expired.csr -subj "/O=mailwire interop/CN=localhost"
  openssl ca -batch -notext -config expired-ca/ca.cnf -extensions ext -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20201231235959Z
  rm -f ./*.csr ./*.ext ./*.srl
  chmod 0644 ./*.pem
  chmod 0600 ./*.key
}
(gen_tls) >"$DIR/logs/openssl.log" 2>&1 || { tail -20 "$DIR/logs/openssl.log" >&2; die "certificate generation"; }
phase certificates

# --- Dovecot -----------------------------------------------------------------------
D=$DIR/dovecot
mkdir -p "$D/run" "$D/state"
{
  for u in "${USERS[@]}"; do
    extra=""
    [ "$u" = dave ] && extra="userdb_quota_rule=*:storage=1K"
    printf '%s:{PLAIN}%s::::::%s\n' "$u" "${PASS[$u]}" "$extra"
  done
} >"$D/users"
chown root:dovecot "$D/users"
chmod 0640 "$D/users"

HAVE_SUBMISSION=no
[ -x /usr/lib/dovecot/submission ] && [ -x /usr/lib/dovecot/submission-login ] && HAVE_SUBMISSION=yes
PROTOCOLS="lmtp"
[ "$HAVE_SUBMISSION" = yes ] && PROTOCOLS="lmtp submission"

cat >"$D/dovecot.conf" <<EOF
# Private Dovecot instance for mailwire interop tests (written by start.sh).
instance_name = mailwire-interop-$OFF
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
protocols = $PROTOCOLS
listen = 127.0.0.1
hostname = mx.interop.test
login_greeting = mailwire interop Dovecot ready.
shutdown_clients = yes

default_internal_user = dovecot
default_login_user = dovenull
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
first_valid_gid = 8
mail_location = maildir:$DIR/mail/dovecot/%d/%n

ssl = yes
ssl_cert = <$T/server.pem
ssl_key = <$T/server.key
ssl_min_protocol = TLSv1.2
ssl_dh = </usr/share/dovecot/dh.pem

auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256
auth_failure_delay = 0
disable_plaintext_auth = yes
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $D/users
  default_fields = home=$DIR/mail/dovecot-home/%n
}

# Dovecot delays authentication from an IP after failures (up to 15 s, the "auth
# penalty" kept by anvil); wrong-password tests would slow every later login from
# 127.0.0.1. A socket nobody may connect to turns the penalty off.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener $D/auth.sock {
    mode = 0666
  }
}
service lmtp {
  unix_listener $D/lmtp.sock {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $P_LMTP
  }
}
protocol lmtp {
  mail_plugins = \$mail_plugins quota
}
plugin {
  quota = maildir:User quota
}
EOF
if [ "$HAVE_SUBMISSION" = yes ]; then
  cat >>"$D/dovecot.conf" <<EOF

# Dovecot treats a connection whose two ends have the same IP as secured and then
# offers AUTH before STARTTLS. Listening on 127.0.0.2 (still loopback; clients
# connect from 127.0.0.1) makes it behave as it would for a remote client, and
# ssl = required refuses any AUTH before STARTTLS.
service submission-login {
  inet_listener submission {
    address = $DSUB_HOST
    port = $P_DSUBMISSION
  }
}
protocol submission {
  ssl = required
}
submission_relay_host = 127.0.0.1
submission_relay_port = $P_SMTP
submission_relay_trusted = no
submission_max_mail_size = 10M
EOF
fi
dovecot -c "$D/dovecot.conf" -n >"$DIR/logs/dovecot-config.txt" 2>&1 ||
  { cat "$DIR/logs/dovecot-config.txt" >&2; die "dovecot configuration"; }
# Dovecot keeps the stderr it was started with: never leave it on ours.
dovecot -c "$D/dovecot.conf" </dev/null >>"$DIR/logs/dovecot.stderr" 2>&1 ||
  { tail -20 "$DIR/logs/dovecot.stderr" "$D/dovecot.log" >&2 2>/dev/null; die "dovecot start"; }
phase dovecot

# --- Postfix -----------------------------------------------------------------------
PF=$DIR/postfix
# Queue and data directories live outside the configuration directory: postfix-script
# checks that everything below the configuration directory is owned by root.
PFQ=$DIR/spool/postfix
PFD=$DIR/spool/postfix-data
mkdir -p "$PFQ" "$PFD"
chown postfix:postfix "$PFD"
chmod 0700 "$PFD"
{
  for u in alice bob carol dave utf8; do
    printf '%s@%s\t%s/\n' "$u" "$DOMAIN" "$u"
  done
  printf '%s\t%s/\n' "$UTF8_ADDR" utf8
  # Recipients of the LMTP domain must be known here too (recipient validation);
  # transport_maps sends the whole domain to Dovecot.
  for u in "${USERS[@]}"; do
    printf '%s@%s\tlmtp\n' "$u" "$LMTP_DOMAIN"
  done
} >"$PF/vmailbox"
printf '%s\tlmtp:unix:%s\n' "$LMTP_DOMAIN" "$D/lmtp.sock" >"$PF/transport"
cat >"$PF/recipient_access" <<'EOF'
# Recipient triggers: exact names, or with a "+tag" / "-tag" suffix for test isolation.
/^reject([+-][^@]*)?@interop\.test$/      550 5.7.1 Recipient refused for testing
/^tempfail([+-][^@]*)?@interop\.test$/    450 4.2.0 Try again later (tempfail for testing)
EOF
cat >"$PF/sender_access" <<'EOF'
/^badsender([+-][^@]*)?@interop\.test$/   553 5.7.1 Sender refused for testing
EOF

cat >"$PF/main.cf" <<EOF
# Private Postfix instance for mailwire interop tests (written by start.sh).
compatibility_level = 3.6
queue_directory = $PFQ
data_directory = $PFD
mail_owner = postfix
setgid_group = postdrop
maillog_file = $PF/maillog
maillog_file_prefixes = $DIR
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C

myhostname = mx.interop.test
mydomain = interop.test
myorigin = \$myhostname
mydestination =
local_transport = error:5.1.1 local delivery is disabled on this test server
alias_maps =
alias_database =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_client_event_limit_exceptions = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP mailwire interop Postfix
biff = no

# No DNS on these machines, and nothing leaves the machine.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
default_transport = error:5.4.4 this test server delivers only to its own domains
relay_transport = error:5.4.4 this test server delivers only to its own domains

# Delivery: interop.test by virtual(8) to maildirs, lmtp.interop.test to Dovecot.
virtual_mailbox_domains = $DOMAIN, $LMTP_DOMAIN
virtual_mailbox_base = $DIR/mail/virtual
virtual_mailbox_maps = texthash:$PF/vmailbox
virtual_alias_maps =
virtual_uid_maps = static:8
virtual_gid_maps = static:8
virtual_minimum_uid = 8
virtual_mailbox_limit = 0
mailbox_size_limit = 0
transport_maps = texthash:$PF/transport
smtputf8_enable = yes
# Keep bytes as the client sent them: no header rewriting or added headers for
# loopback clients, no 8bit-to-quoted-printable conversion, no folding of long
# lines on the way to Dovecot.
local_header_rewrite_clients =
disable_mime_output_conversion = yes
lmtp_line_length_limit = 0

# Policy. Sender refusals happen at MAIL.
smtpd_delay_reject = no
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions = check_sender_access regexp:$PF/sender_access
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$PF/recipient_access
mua_relay_restrictions = permit_sasl_authenticated, reject
mua_recipient_restrictions = check_recipient_access regexp:$PF/recipient_access, permit_sasl_authenticated, reject
message_size_limit = 10485760

# Fast tests.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_junk_command_limit = 1000
in_flow_delay = 0

# TLS: STARTTLS offered everywhere; TLS 1.2 minimum.
smtpd_tls_chain_files = $T/server.key, $T/server.pem
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 1
smtp_tls_security_level = none
lmtp_tls_security_level = none

# SASL through Dovecot's auth socket, enabled per listener in master.cf.
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/auth.sock
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_tls_auth_only = no
EOF

bad_cert() { # name port key cert [extra -o lines]
  printf '127.0.0.1:%s inet n - n - - smtpd\n  -o syslog_name=postfix/%s\n  -o smtpd_tls_security_level=may\n  -o smtpd_tls_chain_files=%s,%s\n' "$2" "$1" "$3" "$4"
}
{
  cat <<EOF
# service type private unpriv chroot wakeup maxproc command + args
127.0.0.1:$P_SMTP inet n - n - - smtpd
  -o syslog_name=postfix/smtp
127.0.0.1:$P_SUBMISSION inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_relay_restrictions=\$mua_relay_restrictions
  -o smtpd_recipient_restrictions=\$mua_recipient_restrictions
127.0.0.1:$P_SMTPS inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$mua_relay_restrictions
  -o smtpd_recipient_restrictions=\$mua_recipient_restrictions
EOF
  bad_cert untrusted "$P_UNTRUSTED" "$T/untrusted.key" "$T/untrusted.pem"
  bad_cert expired "$P_EXPIRED" "$T/expired.key" "$T/expired.pem"
  bad_cert wronghost "$P_WRONGHOST" "$T/wronghost.key" "$T/wronghost.pem"
  cat <<EOF
127.0.0.1:$P_OLDTLS inet n - n - - smtpd
  -o syslog_name=postfix/oldtls
  -o smtpd_tls_security_level=may
  -o smtpd_tls_protocols=TLSv1,TLSv1.1,!TLSv1.2,!TLSv1.3
  -o tls_medium_cipherlist=DEFAULT:@SECLEVEL=0
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
} >"$PF/master.cf"

postfix -c "$PF" start </dev/null >"$DIR/logs/postfix-start.txt" 2>&1 ||
  { cat "$DIR/logs/postfix-start.txt" >&2; tail -20 "$PF/maillog" >&2 2>/dev/null; die "postfix start"; }
phase postfix

# --- ledger and smtp-sink ------------------------------------------------------------
L=$DIR/ledger
for u in "${USERS[@]}"; do printf '%s:%s\n' "$u" "${PASS[$u]}"; done >"$DIR/run/ledger-users"
chmod 0600 "$DIR/run/ledger-users"
setsid "$PY" "$HERE/ledger.py" --host 127.0.0.1 --port "$P_LEDGER" --dir "$L" \
  --cert "$T/server.pem" --key "$T/server.key" --users "$DIR/run/ledger-users" \
  </dev/null >>"$DIR/logs/ledger.log" 2>&1 &
echo $! >"$DIR/run/ledger.pid"

SINK=""
if [ "${MAILWIRE_INTEROP_NO_SINK:-0}" != 1 ]; then
  # -c: count in the log, -h: hostname; backlog 256. Messages are discarded.
  setsid smtp-sink -u postfix -h sink.interop.test "127.0.0.1:$P_SINK" 256 \
    </dev/null >>"$DIR/logs/smtp-sink.log" 2>&1 &
  echo $! >"$DIR/run/smtp-sink.pid"
  SINK="127.0.0.1:$P_SINK"
fi

# --- wait for every listener -----------------------------------------------------------
checks=(
  "plain 127.0.0.1:$P_SMTP"
  "plain 127.0.0.1:$P_SUBMISSION"
  "tls 127.0.0.1:$P_SMTPS"
  "plain 127.0.0.1:$P_UNTRUSTED"
  "plain 127.0.0.1:$P_EXPIRED"
  "plain 127.0.0.1:$P_WRONGHOST"
  "plain 127.0.0.1:$P_OLDTLS"
  "plain 127.0.0.1:$P_LMTP"
  "unix $D/lmtp.sock"
  "plain 127.0.0.1:$P_LEDGER"
)
[ "$HAVE_SUBMISSION" = yes ] && checks+=("plain $DSUB_HOST:$P_DSUBMISSION")
[ -n "$SINK" ] && checks+=("plain $SINK")
if ! "$PY" - "$WAIT" "$T/ca.pem" "${checks[@]}" <<'PYEOF' 2>"$DIR/logs/wait.log"; then
import socket, ssl, sys, time
wait, ca, checks = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
deadline = time.monotonic() + wait
def greet(kind, where):
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(where)
    else:
        host, port = where.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=3)
        if kind == "tls":
            ctx = ssl.create_default_context(cafile=ca)
            s = ctx.wrap_socket(s, server_hostname="localhost")
    try:
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"220"):
            raise OSError("unexpected greeting %r" % data)
    finally:
        s.close()
pending = [c.split(" ", 1) for c in checks]
last = {}
while pending and time.monotonic() < deadline:
    still = []
    for kind, where in pending:
        try:
            greet(kind, where)
        except Exception as e:
            last[where] = e
            still.append((kind, where))
    pending = still
    if pending:
        time.sleep(0.2)
for kind, where in pending:
    print("no greeting from %s %s: %s" % (kind, where, last.get(where)), file=sys.stderr)
sys.exit(1 if pending else 0)
PYEOF
  cat "$DIR/logs/wait.log" >&2
  for f in "$PF/maillog" "$D/dovecot.log" "$DIR/logs/dovecot.stderr" "$DIR/logs/ledger.log" "$DIR/logs/smtp-sink.log"; do
    [ -s "$f" ] && { echo "--- tail $f" >&2; tail -15 "$f" >&2; }
  done
  die "not every listener answered within ${WAIT}s (servers left running; stop.sh $DIR stops them)"
fi

phase wait
# --- env file ---------------------------------------------------------------------------
q() { printf "%s='%s'\n" "$1" "$2"; }
{
  echo "# mailwire interop environment, written by scripts/interop/start.sh at $(date -u +%FT%TZ)."
  echo "# Shell syntax: source it, or read it with internal/interoptest."
  q MAILWIRE_INTEROP_DIR "$DIR"
  q POSTFIX_SMTP "127.0.0.1:$P_SMTP"
  q POSTFIX_SUBMISSION "127.0.0.1:$P_SUBMISSION"
  q POSTFIX_SMTPS "127.0.0.1:$P_SMTPS"
  q POSTFIX_UNTRUSTED_CERT_SMTP "127.0.0.1:$P_UNTRUSTED"
  q POSTFIX_EXPIRED_CERT_SMTP "127.0.0.1:$P_EXPIRED"
  q POSTFIX_WRONG_HOST_CERT_SMTP "127.0.0.1:$P_WRONGHOST"
  q POSTFIX_OLD_TLS_SMTP "127.0.0.1:$P_OLDTLS"
  q POSTFIX_HOSTNAME "mx.interop.test"
  q POSTFIX_SIZE_LIMIT "10485760"
  q POSTFIX_CONFIG_DIR "$PF"
  q POSTFIX_LOG "$PF/maillog"
  q POSTFIX_QUEUE_DIR "$PFQ"
  q POSTFIX_PID_FILE "$PFQ/pid/master.pid"
  q DOVECOT_LMTP_SOCKET "$D/lmtp.sock"
  q DOVECOT_LMTP_TCP "127.0.0.1:$P_LMTP"
  q DOVECOT_SUBMISSION "$([ "$HAVE_SUBMISSION" = yes ] && echo "$DSUB_HOST:$P_DSUBMISSION")"
  q DOVECOT_AUTH_SOCKET "$D/auth.sock"
  q DOVECOT_CONFIG "$D/dovecot.conf"
  q DOVECOT_LOG "$D/dovecot.log"
  q DOVECOT_PID_FILE "$D/run/master.pid"
  q LEDGER_SMTP "127.0.0.1:$P_LEDGER"
  q LEDGER_DIR "$L"
  q LEDGER_PID_FILE "$DIR/run/ledger.pid"
  q SINK_SMTP "$SINK"
  q SINK_PID_FILE "$([ -n "$SINK" ] && echo "$DIR/run/smtp-sink.pid")"
  q TLS_SERVER_NAME "localhost"
  q CA_FILE "$T/ca.pem"
  q SERVER_CERT_FILE "$T/server.pem"
  q SERVER_KEY_FILE "$T/server.key"
  q CLIENT_CERT_FILE "$T/client.pem"
  q CLIENT_KEY_FILE "$T/client.key"
  q UNTRUSTED_CA_FILE "$T/untrusted-ca.pem"
  q UNTRUSTED_CERT_FILE "$T/untrusted.pem"
  q UNTRUSTED_KEY_FILE "$T/untrusted.key"
  q EXPIRED_CERT_FILE "$T/expired.pem"
  q EXPIRED_KEY_FILE "$T/expired.key"
  q WRONG_HOST_CERT_FILE "$T/wronghost.pem"
  q WRONG_HOST_KEY_FILE "$T/wronghost.key"
  q DOMAIN "$DOMAIN"
  q LMTP_DOMAIN "$LMTP_DOMAIN"
  q VIRTUAL_MAILDIR_ROOT "$DIR/mail/virtual"
  q DOVECOT_MAILDIR_ROOT "$DIR/mail/dovecot"
  q USERS "${USERS[*]}"
  for u in "${USERS[@]}"; do
    U=$(echo "$u" | tr '[:lower:]' '[:upper:]')
    q "${U}_USER" "$u"
    q "${U}_PASSWORD" "${PASS[$u]}"
  done
  q QUOTA_USER "dave"
  q UTF8_USER "utf8"
  q UTF8_ADDRESS "$UTF8_ADDR"
  q REJECT_RCPT "reject@$DOMAIN"
  q TEMPFAIL_RCPT "tempfail@$DOMAIN"
  q BAD_SENDER "badsender@$DOMAIN"
  q UNKNOWN_RCPT "nobody@$DOMAIN"
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"

END_TS=$(date +%s.%N)
log "ready in $(awk "BEGIN { printf \"%.1f\", $END_TS - $START_TS }")s (${TIMINGS# }); env: $DIR/env"

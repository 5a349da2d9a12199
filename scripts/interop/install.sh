#!/usr/bin/env bash
# Installs the interop peers from Debian's packages when they are missing:
# Postfix (with smtp-sink), Dovecot (core, LMTP, submission), aiosmtpd, openssl and swaks.
# Idempotent: when everything is already installed it only checks and returns.
# The system instances of Postfix and Dovecot are never configured or started:
# Postfix is pre-seeded with "No configuration" and service starts are refused by a
# policy-rc.d that exits 101 while the packages install.
set -euo pipefail

PACKAGES=(
  postfix
  dovecot-core
  dovecot-lmtpd
  dovecot-submissiond
  python3-aiosmtpd
  openssl
  swaks
  # swaks' optional Perl modules: TLS and the SASL mechanisms it implements.
  libio-socket-ssl-perl
  libnet-ssleay-perl
  libauthen-sasl-perl
  libdigest-hmac-perl
)

log() { printf 'interop/install: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root"
  exit 1
fi

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "all packages present"
  exit 0
fi

log "missing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# dovecot-submissiond exists in Debian 12; if a mirror lacks it, go on without it
# (SCRAM is then tested through Postfix's Dovecot SASL instead, see start.sh).
apt-get "${apt_opts[@]}" update -qq || { sleep 5; apt-get "${apt_opts[@]}" update -qq; }
want=()
for p in "${missing[@]}"; do
  if [ -n "$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)')" ]; then
    want+=("$p")
  else
    log "package $p is not available here: skipped"
  fi
done

echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string mx.interop.test" | debconf-set-selections

# Keep the package scripts from starting the system daemons. Only a policy-rc.d
# created here is removed again; one that was already there is left alone.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# written by mailwire scripts/interop/install.sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

if [ "${#want[@]}" -gt 0 ]; then
  apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${want[@]}"
fi

for p in postfix dovecot-core dovecot-lmtpd python3-aiosmtpd openssl swaks; do
  installed "$p" || { log "required package $p did not install"; exit 1; }
done
log "done"

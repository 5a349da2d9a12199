#!/usr/bin/env bash
# Runs mailwire's client benchmark against its peers. See bench/README.md.
#
#   bench/run.sh                 full run (about 7 minutes on 2 cores); rewrites the
#                                generated part of docs/performance.md and bench/results/latest.md
#   bench/run.sh -quick          smoke run (1/10 of the messages, under 2 minutes);
#                                writes bench/results/quick.md only
#   bench/run.sh --ref HEAD ...  benchmark mailwire as committed at a git revision (a
#                                git archive of it), not the working tree
#   bench/run.sh --no-install    do not install Postfix/python3 when they are missing
#
# Any other arguments go to the benchmark program (bench run -h lists them), e.g.
#   bench/run.sh -scenarios a,c -clients mailwire,go-smtp -rounds 5
#
# Installs Debian's postfix (for smtp-sink and smtp-source) and python3 when missing
# and when run as root, with the system Postfix neither configured nor started.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin
export GOFLAGS=-mod=mod

log() { printf 'bench/run.sh: %s\n' "$*" >&2; }

REF=""
INSTALL=1
QUICK=""
ARGS=()
CMDLINE="bench/run.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) REF=$2; CMDLINE+=" --ref $2"; shift 2; continue ;;
    --ref=*) REF=${1#--ref=}; CMDLINE+=" $1"; shift; continue ;;
    --no-install) INSTALL=""; shift; continue ;;
    -quick|--quick|-quick=true) QUICK=1 ;;
  esac
  ARGS+=("$1")
  CMDLINE+=" $1"
  shift
done

# --- peers -------------------------------------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]; }

install_peers() {
  local want=()
  command -v smtp-sink >/dev/null 2>&1 && command -v smtp-source >/dev/null 2>&1 || want+=(postfix)
  [ -x /usr/bin/python3 ] || want+=(python3)
  [ ${#want[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${want[*]} and cannot install (not root, or no apt-get): those peers are skipped"
    return 0
  fi
  log "installing ${want[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # Keep the package scripts from starting the system's Postfix; remove only our own policy-rc.d.
  local created=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# written by mailwire bench/run.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    created=1
  fi
  local rc=0
  { apt-get "${apt_opts[@]}" update -qq || { sleep 5; apt-get "${apt_opts[@]}" update -qq; }; } &&
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${want[@]}" || rc=$?
  [ -n "$created" ] && rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || log "apt-get failed ($rc): missing peers are skipped"
}
[ -n "$INSTALL" ] && install_peers

# --- build -------------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/mailwire-bench-build.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
BIN=$TMP/bench
cd "$BENCH"
# The batch clients (client_batch.go) need mailwire's batch API; a source
# without it (an older --ref) is built with the tag that leaves them out.
tags() {
  if grep -qs 'func (c \*Conn) SendBatch' "$1"/transport/*.go; then
    echo ""
  else
    log "this mailwire has no SendBatch: the batch clients are left out"
    echo "-tags=mailwire_nobatch"
  fi
}
if [ -n "$REF" ]; then
  mkdir -p "$TMP/src" "$TMP/mod"
  git -C "$ROOT" archive --format=tar "$REF" | tar -x -C "$TMP/src"
  cp go.mod "$TMP/mod/go.mod"
  cp go.sum "$TMP/mod/go.sum"
  go mod edit -modfile="$TMP/mod/go.mod" -replace "github.com/mailwire/mailwire=$TMP/src"
  go build -modfile="$TMP/mod/go.mod" $(tags "$TMP/src") -o "$BIN" .
  SRC="commit $(git -C "$ROOT" rev-parse --short "$REF") ($REF, from git archive)"
else
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  SRC="working tree (HEAD $commit)"
  if [ -n "$(git -C "$ROOT" status --porcelain -- transport internal envelope dialer auth smtptrace 2>/dev/null)" ]; then
    SRC+=" with uncommitted changes"
  fi
  go build $(tags "$ROOT") -o "$BIN" .
fi
log "built against mailwire $SRC"

# --- run ---------------------------------------------------------------------------------------
if [ -n "$QUICK" ]; then
  exec_args=(-out "$BENCH/results/quick.md")
elif [ "${#ARGS[@]}" -gt 0 ]; then
  # A run narrowed by flags (scenarios, clients, rounds, ...) is not the table
  # docs/performance.md promises; it goes to its own file (or to -out).
  exec_args=(-out "$BENCH/results/partial.md")
else
  exec_args=(-out "$BENCH/results/latest.md" -update-doc "$ROOT/docs/performance.md")
fi
"$BIN" run "${exec_args[@]}" -command "$CMDLINE" -mailwire-src "$SRC" "${ARGS[@]}"

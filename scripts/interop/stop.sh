#!/usr/bin/env bash
# Stops the interop servers that start.sh started from DIR, and nothing else.
# Usage: stop.sh [DIR]   (default /tmp/mailwire-interop)
#
# Processes are found only through DIR: Postfix with "postfix -c DIR/postfix stop",
# Dovecot with "dovecot -c DIR/dovecot/dovecot.conf stop", the ledger and smtp-sink
# through their pid files. A pid is signalled only after checking that it is still the
# program start.sh started (its executable and command line), never by name. Each of
# these programs leads its own session (setsid), so after the polite stop any process
# left in that session is one of ours and is terminated too. DIR itself is kept, for the
# logs (DIR/env, which describes running servers, is removed); start.sh rebuilds it.
set -uo pipefail

DIR=$(realpath -m "${1:-/tmp/mailwire-interop}")
log() { printf 'interop/stop: %s\n' "$*" >&2; }

if [ ! -e "$DIR/.mailwire-interop" ]; then
  log "$DIR was not made by start.sh: nothing to stop"
  exit 0
fi

PF=$DIR/postfix
D=$DIR/dovecot

# Without servers there is no environment: tests then skip instead of failing
# against dead addresses.
rm -f "$DIR/env"

read_pid() { [ -r "$1" ] && tr -dc '0-9' <"$1" || true; }

# is_ours PID EXE [CMDLINE-SUBSTRING]: the pid is alive and still runs EXE (and mentions
# the substring in its command line).
is_ours() {
  local pid=$1 exe=$2 want=${3:-}
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || return 1
  if [ -n "$want" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want" || return 1
  fi
}

# Live (not zombie) processes whose session id is SID: each program start.sh starts
# leads its own session (setsid, or the daemon's own setsid).
session_members() { ps -eo pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'; }

wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -d "/proc/$1" ] || return 0
    # a zombie counts as gone
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  return 1
}

reap_session() { # sid label exe
  local left
  # Only when the session's leader is gone or still ours: a pid that now belongs to
  # someone else's program is left alone, and so is its session.
  if [ -d "/proc/$1" ] && ! is_ours "$1" "$3"; then return 0; fi
  local i
  for ((i = 0; i < 30; i++)); do # children normally follow their master within a moment
    left=$(session_members "$1")
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  log "$2: terminating leftover processes: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)" | tr '\n' ';')"
  kill -TERM $left 2>/dev/null
  sleep 0.5
  left=$(session_members "$1")
  [ -n "$left" ] && kill -KILL $left 2>/dev/null
  return 0
}

status=0

# The four are stopped in parallel: each waits for its own processes.
# --- Postfix ----------------------------------------------------------------------------
pf_pid=$(read_pid "$DIR/spool/postfix/pid/master.pid")
stop_postfix() {
  [ -f "$PF/main.cf" ] || return 0
  if postfix -c "$PF" status >/dev/null 2>&1; then
    log "postfix ($PF) stopping"
    postfix -c "$PF" stop >/dev/null 2>&1 || true
  fi
  if is_ours "$pf_pid" /usr/lib/postfix/sbin/master; then
    wait_gone "$pf_pid" 15 || { log "postfix master $pf_pid still there: abort"; postfix -c "$PF" abort >/dev/null 2>&1 || true; wait_gone "$pf_pid" 5; }
    if is_ours "$pf_pid" /usr/lib/postfix/sbin/master; then kill -KILL "$pf_pid"; fi
  fi
  [ -z "$pf_pid" ] || reap_session "$pf_pid" postfix /usr/lib/postfix/sbin/master
}

# --- Dovecot ----------------------------------------------------------------------------
dc_pid=$(read_pid "$D/run/master.pid")
stop_dovecot() {
  if [ -f "$D/dovecot.conf" ] && is_ours "$dc_pid" /usr/sbin/dovecot; then
    log "dovecot ($D) stopping"
    dovecot -c "$D/dovecot.conf" stop >/dev/null 2>&1 || kill -TERM "$dc_pid" 2>/dev/null
    wait_gone "$dc_pid" 15 || kill -KILL "$dc_pid" 2>/dev/null
  fi
  [ -z "$dc_pid" ] || reap_session "$dc_pid" dovecot /usr/sbin/dovecot
}

# --- ledger and smtp-sink ----------------------------------------------------------------
stop_pidfile() { # pidfile exe cmdline-substring label
  local pid
  pid=$(read_pid "$1")
  [ -n "$pid" ] || return 0
  if is_ours "$pid" "$2" "$3"; then
    log "$4 ($pid) stopping"
    kill -TERM "$pid" 2>/dev/null
    wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
  fi
  reap_session "$pid" "$4" "$2"
  rm -f "$1"
}
PYEXE=$(readlink -f /usr/bin/python3)
ledger_pid=$(read_pid "$DIR/run/ledger.pid")
sink_pid=$(read_pid "$DIR/run/smtp-sink.pid")

stop_postfix &
stop_dovecot &
stop_pidfile "$DIR/run/ledger.pid" "$PYEXE" "$DIR/ledger" ledger &
stop_pidfile "$DIR/run/smtp-sink.pid" /usr/sbin/smtp-sink "smtp-sink" smtp-sink &
wait

# --- verify ---------------------------------------------------------------------------------
for pair in "$pf_pid /usr/lib/postfix/sbin/master" "$dc_pid /usr/sbin/dovecot" \
  "$ledger_pid $PYEXE" "$sink_pid /usr/sbin/smtp-sink"; do
  sid=${pair%% *}
  exe=${pair#* }
  [ -n "$sid" ] || continue
  if is_ours "$sid" "$exe" && [ "$(awk '{print $3}' "/proc/$sid/stat" 2>/dev/null)" != Z ]; then
    log "still running: $exe ($sid)"
    status=1
    continue
  fi
  # a leader pid now used by someone else's program: not our session
  if [ -d "/proc/$sid" ] && ! is_ours "$sid" "$exe"; then continue; fi
  left=$(session_members "$sid")
  if [ -n "$left" ]; then
    log "processes still running in session $sid: $(echo $left)"
    status=1
  fi
done
[ "$status" -eq 0 ] && log "stopped everything started from $DIR"
exit "$status"

#!/usr/bin/env bash
# User-space instructions per request of Terminus builds, with callgrind:
# stable to about 0.5 % on a shared machine where CPU-time sittings move by
# 10 %. Use it to judge a change to the request path; use compare.sh for
# the side-by-side figures.
#
# For each binary: Terminus (1 worker) runs under valgrind in front of two
# nginx backends (the shared harness's config), is warmed up, and is
# instrumented only while h2load sends N keep-alive requests over CONNS
# connections. The handshakes of those connections are counted too (CONNS
# of them, small against N).
#
#   bench/instructions.sh                          # this checkout, GET / (keep-alive)
#   bench/instructions.sh /tmp/old /tmp/new        # prebuilt binaries, in turn
#   URLPATH=/1m N=400 CONNS=4 bench/instructions.sh   # 1 MiB responses
#   WORKLOAD=hs bench/instructions.sh              # per full handshake + request
#
# WORKLOAD=hs counts the instructions of CONNS `openssl s_time -new` clients
# run for HS_SECONDS (10) each: a full TLS 1.3 handshake and `GET /` per
# connection, as in the harness's hs workload.
#
# Needs: valgrind, nginx, h2load. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-/tmp/terminus-instructions}
URLPATH=${URLPATH:-/}
N=${N:-20000}
WORKLOAD=${WORKLOAD:-ka}
case $WORKLOAD in ka) CONNS=${CONNS:-16} ;; hs) CONNS=${CONNS:-4} ;; *) echo "WORKLOAD is ka or hs" >&2; exit 2 ;; esac
HS_SECONDS=${HS_SECONDS:-10}
BASE=${BASE_PORT:-18700}
# shellcheck source=bench/backends.sh
source "$ROOT/bench/backends.sh"
if [[ $# -eq 0 ]]; then
  cargo build --release --bin terminus -q
  set -- "$ROOT/target/release/terminus"
fi

load() {  # load COUNT -> completed requests (hs: connections in HS_SECONDS, COUNT ignored)
  if [[ $WORKLOAD == hs ]]; then
    stime_load "$CONNS" "$HS_SECONDS" 60
    return
  fi
  h2load --h1 -t 1 -c "$CONNS" -n "$1" --connect-to "127.0.0.1:$PORT" \
    "https://localhost:$PORT$URLPATH" 2>&1 | awk '/^requests:/ {print $8}'
}

start_backends

printf '%-40s %14s %10s %14s\n' binary instructions requests "per request"
for bin in "$@"; do
  rm -f "$TMP"/callgrind.out*
  setsid valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" \
    "$bin" --listen "127.0.0.1:$PORT" --backend "$B1" --backend "$B2" \
    --cert "$CERT_FILE" --key "$KEY_FILE" --workers 1 >"$TMP/valgrind.log" 2>&1 &
  sid=$!; PIDS+=("$sid")
  wait_url "https://127.0.0.1:$PORT/"
  load $((N / 10 + 1)) >/dev/null
  callgrind_control -i on "$sid" >/dev/null 2>&1
  n=$(load "$N")
  callgrind_control -i off "$sid" >/dev/null 2>&1
  callgrind_control -d "$sid" >/dev/null 2>&1
  sleep 1
  kill -- "-$sid" 2>/dev/null || true; wait "$sid" 2>/dev/null || true
  ir=$(cat "$TMP"/callgrind.out* | awk '/^(summary|totals):/ {s += $2} END {printf "%.0f", s}')
  printf '%-40s %14s %10s %14s\n' "$bin" "$ir" "$n" "$(awk -v i="$ir" -v n="$n" 'BEGIN {printf "%.0f", i / n}')"
done
echo "callgrind files: $TMP (callgrind_annotate for where the instructions go)"

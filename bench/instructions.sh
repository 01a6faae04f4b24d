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
#
# Needs: valgrind, nginx, h2load. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
OUT=${OUT:-/tmp/terminus-instructions}
URLPATH=${URLPATH:-/}
N=${N:-20000}
CONNS=${CONNS:-16}
BASE=${BASE_PORT:-18700}
B1=127.0.0.1:$((BASE + 1)) B2=127.0.0.1:$((BASE + 2)) PORT=$((BASE + 10))
MAXCONN=4096
TMP=$OUT/run
export B1 B2 MAXCONN TMP
rm -rf "$TMP"; mkdir -p "$TMP/www"
head -c 1048576 /dev/zero > "$TMP/www/1m"
"$SHARED/certs.sh" "$OUT/certs" >/dev/null
# shellcheck source=/dev/null
source "$SHARED/lib/servers.sh"
if [[ $# -eq 0 ]]; then
  cargo build --release --bin terminus -q
  set -- "$ROOT/target/release/terminus"
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_url() {
  for _ in $(seq 200); do curl -sk --max-time 1 -o /dev/null "$1" && return; sleep 0.2; done
  echo "instructions.sh: $1 did not come up" >&2; exit 1
}
load() {  # load COUNT -> completed requests
  h2load --h1 -t 1 -c "$CONNS" -n "$1" --connect-to "127.0.0.1:$PORT" \
    "https://localhost:$PORT$URLPATH" 2>&1 | awk '/^requests:/ {print $8}'
}

for b in be1:$B1:b1 be2:$B2:b2; do
  IFS=: read -r name _ port id <<<"$b"
  mkdir -p "$TMP/$name"; conf_backend "$TMP/$name" "$port" "$id" > "$TMP/$name/nginx.conf"
  setsid nginx -e stderr -p "$TMP/$name" -c "$TMP/$name/nginx.conf" >"$TMP/$name/out.log" 2>&1 &
  PIDS+=($!)
  wait_url "http://127.0.0.1:$port/"
done

printf '%-40s %14s %10s %14s\n' binary instructions requests "per request"
for bin in "$@"; do
  rm -f "$TMP"/callgrind.out*
  setsid valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" \
    "$bin" --listen "127.0.0.1:$PORT" --backend "$B1" --backend "$B2" \
    --cert "$OUT/certs/ecdsa.crt" --key "$OUT/certs/ecdsa.key" --workers 1 >"$TMP/valgrind.log" 2>&1 &
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

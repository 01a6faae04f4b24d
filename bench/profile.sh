#!/usr/bin/env bash
# Where a keep-alive request's cost goes, for Terminus and nginx as TLS
# proxies in front of the same two nginx backends (configs from the shared
# harness, ../shared/bench/lib/servers.sh). For each proxy, one load run
# (bounded by DURATION: h2load over CONNS keep-alive connections, or with
# WORKLOAD=hs, CONNS `openssl s_time -new` clients: a full TLS 1.3 handshake
# and one request per connection) measures:
#   - proxy CPU per request (utime+stime from /proc, all its processes), in us;
#   - TCP segments per request, sent by every socket on the machine (client,
#     proxy and backends: on loopback each segment is counted once);
#   - syscalls per request by name, with `strace -c -f` attached for a second
#     run (strace slows the proxy: use these as counts, not as times).
#   - the proxy's context switches per request, voluntary (it waited) and
#     involuntary (it was preempted), from /proc.
# With PERF=1, `perf record` of each proxy during a third run: the report is
# in $OUT, and a split of the CPU samples into kernel, crypto, TLS library,
# libc/allocator and the proxy's own code is printed (the same categories for
# Terminus, one binary, and nginx, whose crypto is libcrypto's).
#
#   bench/profile.sh                    # terminus and nginx, 1 worker
#   URLPATH=/1m CONNS=8 bench/profile.sh   # per 1 MiB response
#   UPLOAD=$TMPDIR/1m CONNS=8 bench/profile.sh   # per POST of that file's bytes
#     (the backends answer 200 at once and drain the body; nginx as the proxy
#     buffers request bodies over 16 KiB to a temporary file first)
#   PROXIES=terminus DURATION=5 bench/profile.sh
#   WORKLOAD=hs CONNS=8 PERF=1 bench/profile.sh   # per handshake
#   TERMINUS=/tmp/terminus-old PROXIES=terminus bench/profile.sh   # another build
#
# Needs: nginx, h2load (nghttp2-client), strace; perf for PERF=1.
# Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-/tmp/terminus-profile}
DURATION=${DURATION:-5}
WORKLOAD=${WORKLOAD:-ka}
case $WORKLOAD in ka) CONNS=${CONNS:-64} ;; hs) CONNS=${CONNS:-8} ;; *) echo "WORKLOAD is ka or hs" >&2; exit 2 ;; esac
PROXIES=${PROXIES:-terminus nginx}
BASE=${BASE_PORT:-18600}
# shellcheck source=bench/backends.sh
source "$ROOT/bench/backends.sh"
TERMINUS=${TERMINUS:-}   # a prebuilt binary to profile instead of building this checkout
[[ -n $TERMINUS ]] || { cargo build --release --bin terminus -q; TERMINUS=$ROOT/target/release/terminus; }

cpu_ticks() {  # total utime+stime ticks of every process in session $1
  local t=0 f
  for f in $(pgrep -s "$1"); do
    f=$(cut -d' ' -f14,15 "/proc/$f/stat" 2>/dev/null) || continue
    t=$((t + ${f% *} + ${f#* }))
  done
  echo $t
}
tcp_segments() {  # TCP segments sent so far on this machine (every socket: loopback counts both ends)
  awk '$1 == "Tcp:" && !h {for (i = 1; i <= NF; i++) c[$i] = i; h = 1; next} $1 == "Tcp:" {print $c["OutSegs"]}' /proc/net/snmp
}
switches() {  # voluntary and involuntary context switches of every thread in session $1
  local f
  for f in $(pgrep -s "$1"); do cat /proc/"$f"/task/*/status 2>/dev/null; done |
    awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v + 0, n + 0}'
}
per_req() {  # per_req DELTA REQUESTS -> DELTA / REQUESTS, 2 decimals
  awk -v d="$1" -v n="$2" 'BEGIN {printf "%.2f", d / n}'
}
us_per_req() {  # us_per_req TICKS REQUESTS -> microseconds of CPU per request
  awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}'
}
min_faults() {  # total minor page faults of every process in session $1
  local t=0 f
  for f in $(pgrep -s "$1"); do
    f=$(cut -d' ' -f10 "/proc/$f/stat" 2>/dev/null) || continue
    t=$((t + f))
  done
  echo $t
}
load() {  # load -> completed requests (connections for hs)
  if [[ $WORKLOAD == hs ]]; then
    stime_load "$CONNS" "$DURATION" 30
    return
  fi
  h2load --h1 -t 1 -c "$CONNS" -D "$DURATION" ${UPLOAD:+-d "$UPLOAD"} --connect-to "127.0.0.1:$PORT" \
    "https://localhost:$PORT${URLPATH:-/}" 2>&1 | awk '/^requests:/ {print $8}'
}

split_samples() {  # `perf report -n` lines (samples, dso, symbol) -> % of samples by category
  awk '$1 ~ /%$/ && NF >= 5 {
    n = $2; d = $3; s = $5
    if (d ~ /kernel/) c = (s ~ /finish_task_switch/) ? "kernel (switching in)" : "kernel"
    else if (d ~ /libcrypto/ || s ~ /aws_lc|ecp_nistz|curve25519|bignum_|sha256|sha512|aes_|gcm|HMAC|hkdf|p256|_mont|bn_|CRYPTO_/) c = "crypto"
    else if (d ~ /libssl/ || s ~ /rustls/) c = "TLS library"
    else if (d ~ /libc[.-]/ || s ~ /^_?mi_|malloc|memmove|memset|memcpy/) c = "libc, allocator"
    else c = "proxy, runtime, other"
    t[c] += n; all += n
  } END { for (c in t) printf "%5.1f %%  %s\n", 100 * t[c] / all, c }' | sort -rn | sed 's/^/    /'
}

start_backends
BACKEND_SIDS=("${PIDS[@]}")
backend_ticks() { local t=0 b; for b in "${BACKEND_SIDS[@]}"; do t=$((t + $(cpu_ticks "$b"))); done; echo $t; }

HZ=$(getconf CLK_TCK)
printf '%-9s %10s %12s %14s %12s %10s %12s   %s\n' proxy "req/s" "CPU us/req" "backends us/req" "faults/req" "segs/req" "syscalls/req" "by name (per request)"
for p in $PROXIES; do
  dir=$TMP/$p; mkdir -p "$dir"
  case $p in
    terminus) sid=$(spawn "$dir" "$TERMINUS" --listen "127.0.0.1:$PORT" --backend "$B1" \
                --backend "$B2" --cert "$CERT_FILE" --key "$KEY_FILE" --workers 1) ;;
    nginx) conf_nginx "$dir" "$PORT" 1 > "$dir/nginx.conf"
           sid=$(spawn "$dir" nginx -e stderr -p "$dir" -c "$dir/nginx.conf") ;;
    *) echo "unknown proxy $p" >&2; exit 2 ;;
  esac
  PIDS+=("$sid")   # (spawn ran in a subshell: its PIDS+= did not reach this one)
  wait_url "https://127.0.0.1:$PORT/"
  before=$(cpu_ticks "$sid"); faults=$(min_faults "$sid"); bbefore=$(backend_ticks); segs=$(tcp_segments)
  sw=$(switches "$sid")
  reqs=$(load)
  after=$(cpu_ticks "$sid"); bafter=$(backend_ticks)
  sw=$(awk -v a="$sw" -v b="$(switches "$sid")" -v n="$reqs" 'BEGIN {split(a, x, " "); split(b, y, " ");
    printf "voluntary %.2f, involuntary %.2f", (y[1] - x[1]) / n, (y[2] - x[2]) / n}')
  segs=$(per_req $(($(tcp_segments) - segs)) "$reqs")
  backend_us=$(us_per_req $((bafter - bbefore)) "$reqs")
  faults=$(per_req $(($(min_faults "$sid") - faults)) "$reqs")
  cpu_us=$(us_per_req $((after - before)) "$reqs")
  # The worker(s): every process of the session but nginx's master.
  targets=$(pgrep -s "$sid" | while read -r q; do grep -q "master process" "/proc/$q/cmdline" 2>/dev/null || echo "-p $q"; done)
  # shellcheck disable=SC2086
  strace -c -f -o "$dir/strace.txt" $targets & st=$!
  sleep 1; reqs2=$(load); kill -INT $st; wait $st 2>/dev/null || true
  by=$(awk -v n="$reqs2" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "%s %.2f  ", $NF, $4 / n}' "$dir/strace.txt")
  total=$(awk -v n="$reqs2" '$NF == "total" {printf "%.2f", $4 / n}' "$dir/strace.txt")
  printf '%-9s %10.0f %12s %14s %12s %10s %12s   %s\n' "$p" "$(awk -v n="$reqs" -v d="$DURATION" 'BEGIN {print n / d}')" "$cpu_us" "$backend_us" "$faults" "$segs" "$total" "$by"
  echo "    context switches per request: $sw"
  if [[ ${PERF:-0} == 1 ]]; then
    # shellcheck disable=SC2086
    perf record -g -o "$dir/perf.data" -p "$(echo $targets | sed 's/-p //g; s/ /,/g')" -- sleep "$DURATION" \
      >/dev/null 2>&1 & pf=$!
    load >/dev/null; wait $pf || true
    perf report -i "$dir/perf.data" --no-children --sort dso,symbol --stdio >"$dir/perf-full.txt" 2>/dev/null || true
    head -80 "$dir/perf-full.txt" > "$dir/perf.txt"
    perf report -i "$dir/perf.data" --no-children -n --sort dso,symbol -g none --stdio 2>/dev/null | split_samples
    echo "  perf report: $dir/perf.txt"
  fi
  kill -- "-$sid"; sleep 0.5
done

# Sourced by bench/profile.sh and bench/instructions.sh: the two nginx
# backends of the shared harness (../shared/bench/lib/servers.sh) on
# 127.0.0.1, certificates, and clean-up of everything started.
# Set before sourcing: ROOT, OUT (work directory), BASE (port base).
# Defines: SHARED B1 B2 PORT TMP CERT_FILE KEY_FILE, spawn, wait_url,
# start_backends, stime_load; every process started with `spawn` is killed on exit.
SHARED=${SHARED:-$ROOT/../shared/bench}
B1=127.0.0.1:$((BASE + 1)) B2=127.0.0.1:$((BASE + 2)) PORT=$((BASE + 10))
MAXCONN=4096
TMP=$OUT/run
export B1 B2 MAXCONN TMP
rm -rf "$TMP"; mkdir -p "$TMP/www"
head -c 1048576 /dev/zero > "$TMP/www/1m"
"$SHARED/certs.sh" "$OUT/certs" >/dev/null
CERT_FILE=$OUT/certs/ecdsa.crt KEY_FILE=$OUT/certs/ecdsa.key
# shellcheck source=/dev/null
source "$SHARED/lib/servers.sh"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT

spawn() {  # spawn DIR CMD... : runs in its own session; prints the session id
  setsid "${@:2}" >"$1/out.log" 2>&1 &
  PIDS+=($!)
  echo $!
}
wait_url() {
  for _ in $(seq 200); do curl -sk --max-time 1 -o /dev/null "$1" && return; sleep 0.1; done
  echo "$(basename "$0"): $1 did not come up" >&2; exit 1
}
start_backends() {
  local b name port id
  for b in be1:$B1:b1 be2:$B2:b2; do
    IFS=: read -r name _ port id <<<"$b"
    mkdir -p "$TMP/$name"; conf_backend "$TMP/$name" "$port" "$id" > "$TMP/$name/nginx.conf"
    spawn "$TMP/$name" nginx -e stderr -p "$TMP/$name" -c "$TMP/$name/nginx.conf" >/dev/null
    wait_url "http://127.0.0.1:$port/"
  done
}
stime_load() {  # stime_load CLIENTS SECONDS GRACE -> full handshakes (+ GET /) completed on $PORT
  local i pids=()
  for i in $(seq "$1"); do
    timeout -k 5 $(($2 + $3)) openssl s_time -connect "127.0.0.1:$PORT" -new -time "$2" -www / \
      -ciphersuites TLS_AES_128_GCM_SHA256 >"$TMP/stime.$i" 2>&1 & pids+=($!)
  done
  wait "${pids[@]}" || true
  cat "$TMP"/stime.* | awk '/connections in [0-9.]+s;/ {n += $1} END {print n + 0}'
  rm -f "$TMP"/stime.*
}

#!/usr/bin/env bash
# Side-by-side benchmark of Terminus against nginx and HAProxy, using the
# shared harness (../shared/bench, see its README). Traffic stays on
# 127.0.0.1 and every run is bounded in time.
#
#   bench/compare.sh                 # 1 worker each, all workloads
#   WORKERS=2 bench/compare.sh       # 2 workers each
#   WORKLOADS=ka REPS=5 bench/compare.sh
#
# Needs: apt-get install -y nginx haproxy caddy nghttp2-client
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/run.sh}
: "${WORKERS:=1}"
export WORKERS

cargo build --release --bin terminus
BIN=$(pwd)/target/release/terminus
CMD="$BIN --listen 127.0.0.1:\$BENCH_PORT --backend \${BENCH_BACKENDS%%,*} --backend \${BENCH_BACKENDS##*,} --cert \$BENCH_CERT --key \$BENCH_KEY --workers \$BENCH_WORKERS"
exec "$HARNESS" "nginx@$WORKERS" "haproxy@$WORKERS" "custom:terminus@$WORKERS:18450:$CMD" "$@"

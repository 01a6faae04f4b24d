#!/usr/bin/env bash
# Failover under load on 127.0.0.1: three backends, closed-loop HTTPS GETs,
# one backend killed, restarted, failing with 500s, hanging, recovering.
# Prints per phase what the clients saw and how the pool saw the backends;
# exits non-zero if any client saw an error. Bounded: 7 phases of PHASE_MS.
#
#   bench/failover.sh [PHASE_MS] [CLIENTS]        (defaults: 2000 4)
#   PROFILE=release bench/failover.sh             (optimised build; slower to build)
set -euo pipefail
cd "$(dirname "$0")/.."
phase_ms="${1:-2000}"
clients="${2:-4}"
profile_flag=()
if [[ "${PROFILE:-dev}" == "release" ]]; then
  profile_flag=(--release)
fi
exec timeout 300 cargo run --quiet "${profile_flag[@]}" --example failover -- "$phase_ms" "$clients"

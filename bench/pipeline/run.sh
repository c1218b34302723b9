#!/usr/bin/env bash
# Pipeline benchmarks: starts a local Kafka broker and one zendesk-sim, runs the chosen
# scenarios with bench/pipeline/run.py, then stops both (also on failure or Ctrl-C).
#
#   bench/pipeline/run.sh [SCENARIO...] [-- RUN.PY OPTIONS]
#
# SCENARIO: instant, latency200, tenants10, writelimit, bulk10k (default: all five, in that order).
# Options after `--` go to every run.py call (e.g. `-- --events 5000`; see run.py --help).
#
# Environment: ZW_BUILD_DIR (default build-bench: cmake -S . -B build-bench -G Ninja
# -DCMAKE_BUILD_TYPE=Release -DZW_BUILD_TESTS=OFF && ninja -C build-bench),
# ZW_VENV (default ~/.cache/zendesk-worker/venv, needs confluent-kafka),
# BENCH_KEEP=1 keeps the work directory (worker logs, configs) and prints its path.
# Prints figures only: it exits non-zero when a run could not complete, never on a missed target.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_default="build-bench"
work_prefix=zw-bench
# shellcheck source=bench/lib/stack.sh
. "$root/bench/lib/stack.sh"

bench_args "instant latency200 tenants10 writelimit bulk10k" "$@"

bench_check_binaries

# One simulator for every scenario, rate limits off at start; run.py resets it and turns
# limits, latency and faults on per scenario through the control API.
accounts=()
for i in $(seq 0 9); do
    accounts+=(--account "subdomain=t$i,email=admin@t$i.test,token=bench-token-t$i")
done
bench_stack_start --no-limits --seed 7 "${accounts[@]}"

rc=0
for s in "${scenarios[@]}"; do
    "$py" "$here/run.py" "$s" --bootstrap "$bootstrap" --sim "$addr" --sim-pid "$sim_pid" \
        --worker "$worker" --workdir "$work" ${extra[@]+"${extra[@]}"} || rc=$?
done
exit "$rc"

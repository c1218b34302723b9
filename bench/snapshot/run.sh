#!/usr/bin/env bash
# Snapshot benchmarks (issue 5): starts a local Kafka broker and one zendesk-sim, runs the
# chosen scenarios with bench/snapshot/run.py, then stops both (also on failure or Ctrl-C).
#
#   bench/snapshot/run.sh [SCENARIO...] [-- RUN.PY OPTIONS]
#
# SCENARIO: big (100,000 users, limits off), enterprise (100,000 users, 700 rpm); default both.
# Options after `--` go to every run.py call (e.g. `-- --users 20000`; see run.py --help).
#
# Environment: ZW_BUILD_DIR (default build-snap: cmake -S . -B build-snap -G Ninja
# -DCMAKE_BUILD_TYPE=Release -DZW_BUILD_TESTS=OFF && ninja -C build-snap),
# ZW_VENV (default ~/.cache/zendesk-worker/venv, needs confluent-kafka and requests),
# BENCH_KEEP=1 keeps the work directory (worker logs, configs) and prints its path.
# Prints figures only: it exits non-zero when a run could not complete, never on a missed target.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_default="build-snap"
work_prefix=zw-snapbench
# shellcheck source=bench/lib/stack.sh
. "$root/bench/lib/stack.sh"

bench_args "big enterprise" "$@"

bench_check_binaries

# Limits off at start; run.py resets the account and sets its limits per scenario.
bench_stack_start --no-limits --seed 7 \
    --account "subdomain=snap,email=admin@snap.test,token=bench-token-snap"

rc=0
for s in "${scenarios[@]}"; do
    "$py" "$here/run.py" "$s" --bootstrap "$bootstrap" --sim "$addr" \
        --worker "$worker" --workdir "$work" ${extra[@]+"${extra[@]}"} || rc=$?
done
exit "$rc"

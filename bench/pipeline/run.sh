#!/usr/bin/env bash
# Pipeline benchmarks: starts a local Kafka broker and one zendesk-sim, runs the chosen
# scenarios with bench/pipeline/run.py, then stops both (also on failure or Ctrl-C).
#
#   bench/pipeline/run.sh [SCENARIO...] [-- RUN.PY OPTIONS]
#
# SCENARIO: instant, latency200, tenants10, writelimit (default: all four, in that order).
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
build=${ZW_BUILD_DIR:-$root/build-bench}
case "$build" in /*) ;; *) build=$root/$build ;; esac
venv=${ZW_VENV:-$HOME/.cache/zendesk-worker/venv}
worker=$build/src/zendesk-worker
sim=$build/tools/zendesk-sim/zendesk-sim
py=$venv/bin/python

scenarios=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; extra=("$@"); break ;;
        instant|latency200|tenants10|writelimit) scenarios+=("$1"); shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown scenario '$1'" >&2; exit 64 ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(instant latency200 tenants10 writelimit)

for f in "$worker" "$sim"; do
    [ -x "$f" ] || { echo "run.sh: no $f; build with: cmake -S $root -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DZW_BUILD_TESTS=OFF && ninja -C $build" >&2; exit 2; }
done
[ -x "$py" ] || { echo "run.sh: no python at $py (scripts/setup makes the venv)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zw-bench.XXXXXX")
kdir=$work/kafka
sim_pid=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [ -d "$kdir" ]; then
        "$root/scripts/kafka-local" stop --dir "$kdir" >/dev/null 2>&1 || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "run.sh: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "run.sh: starting Kafka in $kdir" >&2
bootstrap=$("$root/scripts/kafka-local" start --dir "$kdir" | sed -n 's/^BOOTSTRAP=//p' | tail -1)
[ -n "$bootstrap" ] || { echo "run.sh: the broker did not start" >&2; exit 1; }

# One simulator for every scenario, rate limits off at start; run.py resets it and turns
# limits, latency and faults on per scenario through the control API.
accounts=()
for i in $(seq 0 9); do
    accounts+=(--account "subdomain=t$i,email=admin@t$i.test,token=bench-token-t$i")
done
"$sim" --listen 127.0.0.1:0 --no-limits --seed 7 "${accounts[@]}" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
addr=
for _ in $(seq 100); do   # 10 s
    addr=$(sed -n 's/^LISTENING=//p' "$work/sim.out")
    [ -n "$addr" ] && break
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$addr" ] || { echo "run.sh: the simulator did not start:" >&2; cat "$work/sim.err" >&2; exit 1; }
echo "run.sh: broker $bootstrap, simulator $addr (pid $sim_pid)" >&2

rc=0
for s in "${scenarios[@]}"; do
    "$py" "$here/run.py" "$s" --bootstrap "$bootstrap" --sim "$addr" --sim-pid "$sim_pid" \
        --worker "$worker" --workdir "$work" ${extra[@]+"${extra[@]}"} || rc=$?
done
exit "$rc"

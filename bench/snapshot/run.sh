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
build=${ZW_BUILD_DIR:-$root/build-snap}
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
        big|enterprise) scenarios+=("$1"); shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown scenario '$1'" >&2; exit 64 ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(big enterprise)

for f in "$worker" "$sim"; do
    [ -x "$f" ] || { echo "run.sh: no $f; build with: cmake -S $root -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DZW_BUILD_TESTS=OFF && ninja -C $build" >&2; exit 2; }
done
[ -x "$py" ] || { echo "run.sh: no python at $py (scripts/setup makes the venv)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zw-snapbench.XXXXXX")
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

# Limits off at start; run.py resets the account and sets its limits per scenario.
"$sim" --listen 127.0.0.1:0 --no-limits --seed 7 \
    --account "subdomain=snap,email=admin@snap.test,token=bench-token-snap" \
    >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
addr=
for _ in $(seq 100); do   # 10 s
    addr=$(sed -n 's/^LISTENING=//p' "$work/sim.out")
    [ -n "$addr" ] && break
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$addr" ] || { echo "run.sh: the simulator did not start:" >&2; cat "$work/sim.err" >&2; exit 1; }
echo "run.sh: broker $bootstrap, simulator $addr (pid $sim_pid), worker $worker" >&2

rc=0
for s in "${scenarios[@]}"; do
    "$py" "$here/run.py" "$s" --bootstrap "$bootstrap" --sim "$addr" \
        --worker "$worker" --workdir "$work" ${extra[@]+"${extra[@]}"} || rc=$?
done
exit "$rc"

# shellcheck shell=bash
# Shared by the bench run.sh scripts (sourced, not run): checks the built binaries, starts a
# local Kafka broker and one zendesk-sim in a work directory, and stops both on exit.
#
# The caller sets root (the checkout), build_default (its build directory's name) and
# work_prefix (the mktemp name prefix) before sourcing; this sets build (ZW_BUILD_DIR or
# root/build_default) and py (the venv python, ZW_VENV). bench_args parses the command line;
# bench_stack_start SIM_ARGS... then sets: work, bootstrap, addr (the simulator's host:port),
# sim_pid, worker, sim.

# shellcheck disable=SC2154  # root, build_default and work_prefix are the caller's
build=${ZW_BUILD_DIR:-$root/$build_default}
case "$build" in /*) ;; *) build=$root/$build ;; esac
py=${ZW_VENV:-$HOME/.cache/zendesk-worker/venv}/bin/python

# bench_args "SCENARIO..." ARGS...: sets scenarios (the ones named, else all of them in
# order) and extra (the arguments after --, for run.py); --help prints the caller's header.
# shellcheck disable=SC2034  # scenarios and extra are the caller's
bench_args() {
    local known=$1 s ok
    shift
    scenarios=()
    extra=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --) shift; extra=("$@"); break ;;
            -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        esac
        ok=0
        for s in $known; do [ "$1" = "$s" ] && ok=1; done
        [ "$ok" = 1 ] || { echo "run.sh: unknown scenario '$1'" >&2; exit 64; }
        scenarios+=("$1")
        shift
    done
    [ ${#scenarios[@]} -gt 0 ] || read -r -a scenarios <<<"$known"
}

bench_check_binaries() {
    worker=$build/src/zendesk-worker
    sim=$build/tools/zendesk-sim/zendesk-sim
    for f in "$worker" "$sim"; do
        [ -x "$f" ] || { echo "run.sh: no $f; build with: cmake -S $root -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DZW_BUILD_TESTS=OFF && ninja -C $build" >&2; exit 2; }
    done
    [ -x "$py" ] || { echo "run.sh: no python at $py (scripts/setup makes the venv)" >&2; exit 2; }
}

bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${sim_pid:-}" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [ -n "${work:-}" ] && [ -d "$work/kafka" ]; then
        "$root/scripts/kafka-local" stop --dir "$work/kafka" >/dev/null 2>&1 || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "run.sh: work directory kept: $work" >&2
    elif [ -n "${work:-}" ]; then
        rm -rf "$work"
    fi
    exit "$rc"
}

# bench_stack_start SIM_ARGS...: the simulator gets --listen 127.0.0.1:0 plus SIM_ARGS.
bench_stack_start() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$work_prefix.XXXXXX")
    sim_pid=
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM

    echo "run.sh: starting Kafka in $work/kafka" >&2
    bootstrap=$("$root/scripts/kafka-local" start --dir "$work/kafka" | sed -n 's/^BOOTSTRAP=//p' | tail -1)
    [ -n "$bootstrap" ] || { echo "run.sh: the broker did not start" >&2; exit 1; }

    "$sim" --listen 127.0.0.1:0 "$@" >"$work/sim.out" 2>"$work/sim.err" &
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
}

# Shared by the bench run.sh scripts (sourced, not run): checks the built binaries, starts a
# local Kafka broker and one zendesk-sim in a work directory, and stops both on exit.
#
# The caller sets: root (the checkout), build (a build directory), py (the venv python),
# work_prefix (the mktemp name prefix). bench_stack_start SIM_ARGS... then sets: work,
# bootstrap, addr (the simulator's host:port), sim_pid, worker, sim.

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

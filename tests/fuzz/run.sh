#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz for a while, from a corpus seeded with the
# schemas' examples, the deploy configs and tests/fuzz/seeds, with its dictionary.
#
#   tests/fuzz/run.sh TARGET SECONDS      e.g. tests/fuzz/run.sh fuzz_event 600
#   tests/fuzz/run.sh all SECONDS         every target, SECONDS each
#
# TARGET: fuzz_event, fuzz_answers, fuzz_headers, fuzz_config. Builds build-fuzz first
# (CC=clang-14, -DZW_FUZZ=ON) when it is missing. ZW_FUZZ_BUILD_DIR picks another build;
# the growing corpus is kept in BUILD/corpus/TARGET, crashes in BUILD/crashes/TARGET.
# Prints the executions run; exits non-zero on a crash, a leak or a sanitizer report.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${ZW_FUZZ_BUILD_DIR:-$root/build-fuzz}
targets=(fuzz_event fuzz_answers fuzz_headers fuzz_config)

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -eq 2 ] || { usage >&2; exit 2; }
target=$1 seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "run.sh: SECONDS must be a number" >&2; exit 2; }

if [ ! -x "$build/tests/fuzz/fuzz_event" ]; then
    cc=${CC:-$(command -v clang-14 || command -v clang || true)}
    [ -n "$cc" ] || { echo "run.sh: clang is needed (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
    CC=$cc cmake -S "$root" -B "$build" -G Ninja -DZW_FUZZ=ON -DZW_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target "${targets[@]}" >/dev/null

# copy_seeds DIR FILE...: each file under a name of its own (examples share names).
copy_seeds() {
    local dir=$1 f
    shift
    for f in "$@"; do
        cp "$f" "$dir/seed-$(printf '%s' "${f#"$root"/}" | tr '/' '_')"
    done
}

seed() {
    local t=$1 dir=$2
    mkdir -p "$dir"
    case "$t" in
        fuzz_event)
            copy_seeds "$dir" "$root"/schemas/examples/provisioning-request/*/*.json \
                "$root"/schemas/examples/sync-request/*/*.json "$root"/scripts/demo-events/*.json ;;
        fuzz_answers) copy_seeds "$dir" "$here"/seeds/answers/*.json ;;
        fuzz_headers) copy_seeds "$dir" "$here"/seeds/headers/*.txt ;;
        fuzz_config) mapfile -t cfgs < <(find "$root/deploy" -name '*.cfg')
                     copy_seeds "$dir" "${cfgs[@]}" ;;
    esac
}

dict_of() {
    case "$1" in
        fuzz_event|fuzz_answers) echo "$here/json.dict" ;;
        fuzz_headers) echo "$here/headers.dict" ;;
        fuzz_config) echo "$here/config.dict" ;;
    esac
}

run_one() {
    local t=$1 corpus="$build/corpus/$1" crashes="$build/crashes/$1" log rc=0 execs
    [[ " ${targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t" >&2; exit 2; }
    seed "$t" "$corpus"
    mkdir -p "$crashes"
    log=$(mktemp)
    LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0" \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -dict="$(dict_of "$t")" -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" </dev/null >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "run.sh: $t FAILED (exit $rc) after ${execs:-?} executions; input in $crashes/" >&2
    else
        echo "run.sh: $t: ${execs:-?} executions in ${seconds}s, no crash, no leak," \
             "no sanitizer report; corpus $(find "$corpus" -type f | wc -l) inputs"
    fi
    rm -f "$log"
    return "$rc"
}

if [ "$target" = all ]; then
    rc=0
    for t in "${targets[@]}"; do run_one "$t" || rc=1; done
    exit "$rc"
fi
run_one "$target"

#!/usr/bin/env bash
# Measures zendesk-sim's throughput on a simple endpoint (GET /api/v2/users/me, Basic auth,
# rate limits off) with wrk, and prints requests/s and the ratio to the 20,000 req/s target.
# Usage: bench/sim/throughput.sh [path-to-zendesk-sim] [duration, default 10s] [connections, default 64]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sim=${1:-${ZENDESK_SIM:-$root/build/tools/zendesk-sim/zendesk-sim}}
duration=${2:-10s}
conns=${3:-64}
target=20000

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -x "$sim" ] || { echo "no simulator at $sim: build it (ninja zendesk-sim) or pass its path" >&2; exit 2; }

out=$(mktemp)
"$sim" --listen 127.0.0.1:0 --no-limits \
  --account 'subdomain=bench,email=admin@bench.test,token=BENCH' >"$out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$out"' EXIT

for _ in $(seq 50); do
  grep -q '^LISTENING=' "$out" && break
  sleep 0.1
done
addr=$(sed -n 's/^LISTENING=//p' "$out")
[ -n "$addr" ] || { echo "simulator did not start:" >&2; cat "$out" >&2; exit 1; }
port=${addr##*:}
auth="Basic $(printf 'admin@bench.test/token:BENCH' | base64)"

result=$(wrk -t2 -c"$conns" -d"$duration" \
  -H "Host: bench.zendesk.test:$port" -H "Authorization: $auth" \
  "http://$addr/api/v2/users/me.json")
echo "$result"
rps=$(echo "$result" | awk '/^Requests\/sec:/ {print $2}')
errors=$(echo "$result" | awk '/Non-2xx/ {print $NF}')
if [ -n "$errors" ]; then
  echo "unexpected non-2xx answers: $errors" >&2
  exit 1
fi
ratio=$(awk -v r="$rps" -v t="$target" 'BEGIN {printf "%.2f", r / t}')
echo "zendesk-sim GET /api/v2/users/me: ${rps} requests/s, ratio to ${target} target: ${ratio}"
awk -v r="$rps" -v t="$target" 'BEGIN {exit !(r >= t)}' || { echo "below target" >&2; exit 1; }

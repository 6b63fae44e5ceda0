#!/usr/bin/env bash
# Compare loadgen with redis-benchmark on the same redis-server, in one go:
#
#   scripts/bench-vs-redis-benchmark.sh [REQUESTS] [DURATION]
#
#   REQUESTS  redis-benchmark -n (default 1000000)
#   DURATION  loadgen's measured duration (default 20s)
#
# Starts one throwaway redis-server on a free loopback port, runs
#   redis-benchmark -t get -c 50 -n REQUESTS
#   loadgen run scenarios/load/token-validation.toml --users 50
# against it, and prints both rates and loadgen / redis-benchmark. token-validation is one GET of
# a cached token per operation, plus what redis-benchmark does not do: SHA-256 of the token, JSON
# decoding of the claims, two HdrHistogram records and a goose metric. The target is a ratio of at
# least 1.0: loadgen's 50 users share one multiplexed connection (auto-pipelining) where
# redis-benchmark keeps 50 connections with one request in flight each.
#
# Also prints loadgen's peak RSS for the run (from summary.json). Loopback only; bounded in time
# and count; the server is removed on exit. Needs redis-server and redis-benchmark (Debian:
# apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${1:-1000000}"
DURATION="${2:-20s}"

for bin in redis-server redis-benchmark redis-cli; do
  command -v "$bin" >/dev/null || { echo "$bin not found: apt-get install redis-server redis-tools" >&2; exit 2; }
done

cargo build --release -q -p loadgen
LOADGEN=target/release/loadgen

# A free port: the first one in the range that nothing answers on.
PORT=""
for p in $(seq 21000 21999); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port in 21000-21999" >&2; exit 1; }

WORK="$(mktemp -d)"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

for _ in $(seq 100); do
  [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = "PONG" ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = "PONG" ] || { echo "redis-server did not start" >&2; exit 1; }
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT, $(nproc) CPUs"

echo "== redis-benchmark -t get -c 50 -n $REQUESTS"
RB_OUT="$(redis-benchmark -p "$PORT" -t get -c 50 -n "$REQUESTS" -q)"
echo "$RB_OUT" | tr '\r' '\n' | grep -v "rps=" | grep .
RB_RATE="$(echo "$RB_OUT" | tr '\r' '\n' | awk '/^GET:/ {print $2}' | tail -1)"

echo "== loadgen run scenarios/load/token-validation.toml --users 50 --duration $DURATION"
LG_OUT="$("$LOADGEN" run scenarios/load/token-validation.toml --users 50 --duration "$DURATION" \
  --redis-url "redis://127.0.0.1:$PORT" --out "$WORK/results" 2>"$WORK/loadgen.err")" || {
  cat "$WORK/loadgen.err" >&2; echo "$LG_OUT"; exit 1; }
echo "$LG_OUT"
LG_RATE="$(echo "$LG_OUT" | awk '$1 == "api_call" {print $3}')"
SUMMARY="$(echo "$LG_OUT" | sed -n 's/^results: //p')/summary.json"
RSS="$(grep -o '"loadgen_peak_rss_bytes": [0-9]*' "$SUMMARY" | awk '{printf "%.1f MiB", $2 / 1048576}')"
CAL="$(grep -o '"ops_per_sec": [0-9.]*' "$SUMMARY" | awk '{print $2}')"

echo
echo "redis-benchmark GET:        $RB_RATE req/s"
echo "loadgen api_call (one GET): $LG_RATE ops/s   (calibration: $CAL PING/s at concurrency 50)"
awk -v a="$LG_RATE" -v b="$RB_RATE" 'BEGIN { printf "ratio loadgen / redis-benchmark: %.2f (target >= 1.0)\n", a / b }'
echo "loadgen peak RSS: $RSS"

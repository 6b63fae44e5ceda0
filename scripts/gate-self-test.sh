#!/usr/bin/env bash
# Self-test of the regression gate (`loadgen compare`): does it stay quiet when nothing changed,
# and does it catch a real 20 % slowdown?
#
#   scripts/gate-self-test.sh
#   RUNS=20 BASELINE_RUNS=1 DURATION=4s DELAY=1ms SLOWDOWN=20 MAX_REGRESSION=10% scripts/gate-self-test.sh
#
# Starts ONE redis-server on a free loopback port and, against it:
#   0. a probe: the scenario in the closed model with --inject-delay $DELAY, to learn how many
#      ops/s its users can complete when every op carries the delay (X);
#   1. the baseline: BASELINE_RUNS runs (default 1), open model at RATE = X / (1 - SLOWDOWN/100);
#   2. (a) RUNS runs of the same build, same settings, each compared with the baseline:
#          every exit 1 is a false alarm (target: at most 1 in 20). With one 4-s baseline run
#          only the `all` rows have enough samples to be judged (single operations get
#          simultaneous intervals, see loadgen/src/compare/mod.rs); BASELINE_RUNS=3 judges them too;
#   3. (b) RUNS runs with --inject-delay $DELAY, each compared with the baseline:
#          every exit 1 is a detection (target: 20 in 20).
#
# Why an open model at that rate — which metric a "20 % slowdown" shows in: --inject-delay sleeps
# inside every op on tokio's millisecond timer (a 1 ms delay costs ~2.2 ms here: p50 0.15 ms ->
# 2.4 ms), while an op against a local Redis costs ~0.15 ms. In a closed model that delay makes each user ~10x slower, and in a CPU-bound closed
# model a sleep does not even cost capacity; neither is a 20 % slowdown. In the open model at
# RATE, the users keep up without the delay (throughput = RATE, a few % of this machine's
# capacity) and cannot with it: each op then takes as long as in the probe, so they deliver X =
# 80 % of RATE. That is the slowdown by construction: throughput -20 %, and response time (measured
# from each op's intended start, coordinated omission corrected) grows with the backlog. The
# script prints the throughput change it actually measured in (b).
#
# Priority: loadgen and redis-server run at `nice -n $NICE` (default -10) when allowed (root or
# CAP_SYS_NICE). Tail latency on a shared machine follows whatever else runs there: in this
# project's development box, two fuzzers starting halfway through part (a) moved every run's p99 up
# 75 % and the gate, correctly, called that slower. The self-test is about the gate's statistics,
# not the neighbours, so it asks the scheduler to serve the measurement first (NICE=0 to measure
# the machine as it is; the script says which it used).
#
# Every run starts from an empty server (FLUSHALL), as a CI job's throwaway server would: without
# it the sign-in limiter's 60-s windows and the previous runs' sessions carry over (in the closed
# model, within two runs logins were refused and the mix collapsed into logins), so consecutive
# runs would not be the same workload.
#
# Prints each comparison's outcome, then the false-alarm and detection rates. Exit 0 when both
# targets are met, 1 when not, 2 on a setup error. Loopback only; the server and the work
# directory are removed on exit (KEEP=1 keeps the work directory). About 6 minutes with the
# defaults on 2 CPUs. Needs redis-server and redis-cli (Debian: apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-20}"
BASELINE_RUNS="${BASELINE_RUNS:-1}"
DURATION="${DURATION:-4s}"
DELAY="${DELAY:-1ms}"
SLOWDOWN="${SLOWDOWN:-20}"
MAX_REGRESSION="${MAX_REGRESSION:-10%}"
SCENARIO="${SCENARIO:-scenarios/load/smoke.toml}"
NICE="${NICE:--10}"

for bin in redis-server redis-cli; do
  command -v "$bin" >/dev/null || { echo "$bin not found: apt-get install redis-server redis-tools" >&2; exit 2; }
done
if [ -z "${LOADGEN:-}" ]; then
  cargo build --release -q -p loadgen
  LOADGEN=target/release/loadgen
fi

PORT=""
for p in $(seq 22000 22999); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port in 22000-22999" >&2; exit 2; }

PRIO=(nice -n "$NICE")
if [ "$(nice -n "$NICE" nice 2>/dev/null)" != "$(( $(nice) + NICE ))" ]; then
  echo "note: cannot run at nice $NICE here (needs root or CAP_SYS_NICE): normal priority" >&2
  PRIO=()
  NICE=0
fi

WORK="$(mktemp -d)"
${PRIO[@]+"${PRIO[@]}"} redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
  [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = "PONG" ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = "PONG" ] || { echo "redis-server did not start" >&2; exit 2; }
URL="redis://127.0.0.1:$PORT"

# One run from an empty server; prints its results directory. Exit 1 (an SLO failed) is a normal
# outcome for the slowed-down runs; anything else stops the script. OUT picks the parent directory.
run_once() {
  redis-cli -p "$PORT" flushall >/dev/null
  local out rc=0
  out="$(${PRIO[@]+"${PRIO[@]}"} "$LOADGEN" run "$SCENARIO" --redis-url "$URL" --out "$WORK/${OUT:-runs}" --duration "$DURATION" \
    "$@" 2>"$WORK/last-run.err")" || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "loadgen run $* failed with exit $rc:" >&2; cat "$WORK/last-run.err" >&2; exit 2
  fi
  echo "$out" >"$WORK/last-run.out"
  echo "$out" | sed -n 's/^results: //p'
}

# The change column of one row of compare's Markdown table: row OP METRIC FILE.
row() { awk -F'|' -v op=" $1 " -v m=" $2 " '$2 == op && $3 == m {gsub(/ /, "", $6); print $6}' "$3"; }

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scenario $SCENARIO, $DURATION measured per run, threshold $MAX_REGRESSION, $RUNS runs per part, $BASELINE_RUNS baseline run(s), nice $NICE"

run_once --inject-delay "$DELAY" >/dev/null
# The "all" row of the run's printed table: op, count, ops/s, ...
X="$(awk '$1 == "all" {print $3}' "$WORK/last-run.out")"
RATE="$(awk -v x="$X" -v s="$SLOWDOWN" 'BEGIN { printf "%.0f", x / (1 - s / 100) }')"
echo "probe: closed model with --inject-delay $DELAY completes $X ops/s -> open model at --rate $RATE"

# The baseline: a directory of BASELINE_RUNS results directories (compare pools repetitions).
for _ in $(seq 1 "$BASELINE_RUNS"); do OUT=baseline run_once --rate "$RATE" >/dev/null; done
BASE="$WORK/baseline"
echo "baseline: $BASELINE_RUNS run(s) in $BASE"

compare() { # compare PART INDEX RUN_DIR -> exit code of loadgen compare
  local md="$WORK/compare-$1-$2.md" rc=0
  "$LOADGEN" compare "$BASE" "$3" --max-regression "$MAX_REGRESSION" >"$md" 2>"$WORK/compare.err" || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "loadgen compare failed with exit $rc:" >&2; cat "$WORK/compare.err" >&2; exit 2
  fi
  return "$rc"
}

false_alarms=0
echo
echo "(a) the same build, $RUNS times, each compared with the baseline"
for n in $(seq 1 "$RUNS"); do
  i="$(printf '%02d' "$n")"
  dir="$(run_once --rate "$RATE")"
  if compare a "$i" "$dir"; then verdict="quiet"; else verdict="FALSE ALARM"; false_alarms=$((false_alarms + 1)); fi
  printf '  a%s  %-11s  all: throughput %7s  p99 %8s  p99.9 %8s\n' "$i" "$verdict" \
    "$(row all throughput "$WORK/compare-a-$i.md")" "$(row all p99 "$WORK/compare-a-$i.md")" \
    "$(row all p99.9 "$WORK/compare-a-$i.md")"
  if [ "$verdict" != quiet ]; then grep 'regressed' "$WORK/compare-a-$i.md" | grep '^|' | sed 's/^/        /'; fi
done

detected=0
changes=()
echo
echo "(b) --inject-delay $DELAY (a ~$SLOWDOWN % slowdown at this rate), $RUNS times, each compared with the baseline"
for n in $(seq 1 "$RUNS"); do
  i="$(printf '%02d' "$n")"
  dir="$(run_once --rate "$RATE" --inject-delay "$DELAY")"
  if compare b "$i" "$dir"; then verdict="MISSED"; else verdict="detected"; detected=$((detected + 1)); fi
  change="$(row all throughput "$WORK/compare-b-$i.md")"
  changes+=("${change%\%}")
  printf '  b%s  %-11s  all: throughput %7s  p99 %8s\n' "$i" "$verdict" "$change" \
    "$(row all p99 "$WORK/compare-b-$i.md")"
done

mean_change="$(printf '%s\n' "${changes[@]}" | awk '{s += $1; n++} END { if (n) printf "%+.1f", s / n }')"
echo
echo "example comparison (b$(printf '%02d' "$RUNS")):"
sed 's/^/  /' "$WORK/compare-b-$(printf '%02d' "$RUNS").md" | head -20
echo
awk -v f="$false_alarms" -v d="$detected" -v n="$RUNS" -v m="$mean_change" 'BEGIN {
  printf "false alarms: %d / %d = %.0f %% (target <= 1 in 20)\n", f, n, 100 * f / n
  printf "detections:   %d / %d = %.0f %% (target 20 in 20); measured throughput change of the slowed runs: %s %%\n", d, n, 100 * d / n, m
}'
if [ $((false_alarms * 20)) -le "$RUNS" ] && [ "$detected" -eq "$RUNS" ]; then
  echo "gate self-test: PASS"
else
  echo "gate self-test: FAIL"
  exit 1
fi

#!/usr/bin/env bash
# Scale-out on one host: N loadgen workers (processes) against one Redis, then `loadgen merge`; and,
# with --compare, a single-process run of the same scenario measured in the same script, so the
# throughput ratio and the CPU per operation can be read side by side.
#
#   scripts/scale-out.sh [--workers N] [--compare] [SCENARIO] [-- EXTRA RUN FLAGS...]
#
#   --workers N  worker processes (default 3)
#   --compare    also run the scenario as one process, before the workers, on the same server
#   SCENARIO     default scenarios/load/token-validation.toml
#
# REDIS_URL names the Redis to use; without it a throwaway redis-server is started on a free
# loopback port and removed on exit. Results go under results/scale-out-<UTC time>/: single/ (with
# --compare), workers/w0..w(N-1)/, merged/. Prints, per run: ops/s, loadgen CPU µs/op (all workers'
# CPU over all their ops), Redis CPU µs/op, and the bottleneck verdicts; then the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=3
compare=0
scenario=scenarios/load/token-validation.toml
extra=()
while (($#)); do
    case $1 in
        --workers) workers=$2; shift ;;
        --compare) compare=1 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "scale-out.sh: unknown option $1" >&2; exit 2 ;;
        *) scenario=$1 ;;
    esac
    shift
done
[[ $workers =~ ^[1-9][0-9]*$ ]] || { echo "scale-out.sh: --workers must be a positive whole number" >&2; exit 2; }
command -v jq >/dev/null || { echo "scale-out.sh: jq is needed to read the results (apt-get install jq)" >&2; exit 2; }

# LOADGEN names a prebuilt binary (e.g. a debug build); by default the release build.
if [[ -z ${LOADGEN:-} ]]; then
    cargo build --release -q -p loadgen
    LOADGEN=${CARGO_TARGET_DIR:-target}/release/loadgen
fi
loadgen=$LOADGEN

server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [[ -z ${REDIS_URL:-} ]]; then
    command -v redis-server >/dev/null || { echo "scale-out.sh: redis-server not found and no REDIS_URL" >&2; exit 2; }
    port=""
    for p in $(seq 22000 22999); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    [[ -n $port ]] || { echo "scale-out.sh: no free port in 22000-22999" >&2; exit 1; }
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --logfile "" >/dev/null &
    server_pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export REDIS_URL=redis://127.0.0.1:$port
fi

out=results/scale-out-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out/workers"

# Redis CPU per op: its used_cpu_user + used_cpu_sys growth over the run (for a merged run, over the
# union of the workers' windows, so the one server is counted once) per measured op.
readonly REDIS_US='(((.redis.deltas.used_cpu_user // 0) + (.redis.deltas.used_cpu_sys // 0)) * 1e6 / .ops.all.count * 100 | round / 100)'

# One line per run: ops/s, loadgen CPU/op, Redis CPU/op, bottleneck.
line() {
    jq -r --arg name "$1" "\"\\(\$name): \\(.ops.all.throughput) ops/s, \\(.ops.all.count) ops, loadgen \\(.bottleneck.generator.cpu_us_per_op) µs CPU/op, redis \\($REDIS_US) µs CPU/op, bottleneck \\(.bottleneck.verdict): \\(.bottleneck.rule)\"" "$2/summary.json"
}

if ((compare)); then
    "$loadgen" run "$scenario" --out "$out/single" "${extra[@]}" >"$out/single.log" 2>&1 || true
    single=$(ls -d "$out"/single/*/ | head -1)
fi

start=$(date -u -d '+8 sec' +%FT%TZ)
pids=()
for ((i = 0; i < workers; i++)); do
    "$loadgen" run "$scenario" --worker "$i/$workers" --start-at "$start" \
        --out "$out/workers" "${extra[@]}" >"$out/worker-$i.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
"$loadgen" merge "$out/workers" --out "$out/merged" >"$out/merge.log" 2>&1 || true
[[ -f $out/merged/summary.json ]] || { cat "$out/merge.log" >&2; exit 1; }

echo "results: $out"
for d in "$out"/workers/*/; do line "worker $(jq -r .worker.index "$d/summary.json")" "$d"; done
line "merged ($workers workers)" "$out/merged"
if ((compare)); then
    line "single process" "$single"
    jq -rn --slurpfile m "$out/merged/summary.json" --slurpfile s "$single/summary.json" '
        ($m[0].ops.all.throughput / $s[0].ops.all.throughput) as $tp |
        ($m[0].bottleneck.generator.cpu_us_per_op / $s[0].bottleneck.generator.cpu_us_per_op) as $cpu |
        (($m[0].bottleneck.generator.cpu_us_per_op + ($m[0] | '"$REDIS_US"')) /
         ($s[0].bottleneck.generator.cpu_us_per_op + ($s[0] | '"$REDIS_US"'))) as $total |
        "throughput merged/single: ×\($tp * 100 | round / 100); loadgen CPU per op merged/single: ×\($cpu * 100 | round / 100); total (loadgen + Redis) CPU per op: ×\($total * 100 | round / 100)"'
fi

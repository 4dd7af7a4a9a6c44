#!/usr/bin/env bash
# The HTTP API benchmark (docs/BENCHMARKS.md, "HTTP API"): starts the release drover-api
# on a Redis and a database of its own and submits jobs with wrk over keep-alive
# connections. Needs wrk (Debian: apt-get install -y wrk).
#
# Settings: BENCH_CONNECTIONS (default 32), BENCH_THREADS (wrk threads, default 2),
# BENCH_DURATION (default 30s), BENCH_RATE_LIMIT (1 to keep the per-key rate limiter on
# with a bucket too large to refuse anything, the default; 0 to turn it off),
# BENCH_WORKER_THREADS (tokio worker threads of the API, default: one per core).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk > /dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --quiet --release -p drover-api --bin drover-api

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d -t drover-bench-XXXXXX)
redis_port=$(free_port)
port=$(free_port)
key="bench-submitter-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
if [ "${BENCH_RATE_LIMIT:-1}" = 1 ]; then rate=10000000; else rate=0; fi
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
env -u DATABASE_URL \
    ${BENCH_WORKER_THREADS:+TOKIO_WORKER_THREADS=$BENCH_WORKER_THREADS} \
    DROVER_DATA_DIR="$dir/data" \
    DROVER_API_ADDR="127.0.0.1:$port" \
    REDIS_URL="redis://127.0.0.1:$redis_port" \
    DROVER_API_KEYS="submitter:$key" \
    DROVER_API_RATE_SUBMITTER="$rate" \
    DROVER_API_BURST_SUBMITTER=100000000 \
    DROVER_ENV=prod \
    RUST_LOG=warn \
    target/release/drover-api > "$dir/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/ready" > /dev/null 2>&1 && break
    sleep 0.1
done

cat > "$dir/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"payload": {"source": "aggregates", "format": "csv"}, "options": {"priority": 5}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
-- Say how many answers were errors, so that a fast run of errors is not taken for a
-- fast run (wrk counts statuses over 399).
function done(summary, latency, requests)
  io.write(string.format("error responses (4xx/5xx): %d\n", summary.errors.status))
end
LUA

url="http://127.0.0.1:$port/api/v1/queues/export/jobs"
echo "machine: $(nproc) cores, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# A short warm-up (connections, script cache), then the measured run.
wrk -t2 -c"${BENCH_CONNECTIONS:-32}" -d3s -s "$dir/submit.lua" "$url" > /dev/null
wrk -t"${BENCH_THREADS:-2}" -c"${BENCH_CONNECTIONS:-32}" -d"${BENCH_DURATION:-30s}" \
    --latency -s "$dir/submit.lua" "$url"
echo "jobs in the queue after warm-up and run: $(redis-cli -p "$redis_port" --raw EVAL \
    "return redis.call('ZCARD', KEYS[1])" 1 '{drover:export}:wait')"

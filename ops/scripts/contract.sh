#!/usr/bin/env bash
# The contract run (docs/CONTRACT.md): starts drover-api on a Redis and a database of its
# own, runs schemathesis (from PyPI) against its /openapi.json with an admin key and every
# check on (ops/contract/schemathesis.toml), and stops everything. Exit status:
# schemathesis's (0 when it found nothing), or 1 if the API logged an error.
#
# Settings: CONTRACT_EXAMPLES (test cases per operation, default 15), CONTRACT_SEED
# (default 1), CONTRACT_PORT (default: a free one), CONTRACT_VENV (where schemathesis is
# installed, default target/contract-venv). Reports go to target/contract/.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=4.32.5
venv=${CONTRACT_VENV:-target/contract-venv}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
cargo build --quiet -p drover-api --bin drover-api
# Where cargo put it: CARGO_TARGET_DIR when set, else target/.
api_bin="${CARGO_TARGET_DIR:-target}/debug/drover-api"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d -t drover-contract-XXXXXX)
redis_port=$(free_port)
port=${CONTRACT_PORT:-$(free_port)}
key="contract-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
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
env -u DATABASE_URL -u DROVER_API_KEYS \
    DROVER_DATA_DIR="$dir/data" \
    DROVER_API_ADDR="127.0.0.1:$port" \
    REDIS_URL="redis://127.0.0.1:$redis_port" \
    DROVER_API_KEYS="admin:$key" \
    DROVER_API_RATE_ADMIN=0 \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$api_bin" > "$dir/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/ready" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/ready" > /dev/null || { cat "$dir/api.log"; exit 1; }

mkdir -p target/contract
status=0
"$venv/bin/schemathesis" --config-file ops/contract/schemathesis.toml \
    run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all \
    --max-examples "${CONTRACT_EXAMPLES:-15}" \
    --seed "${CONTRACT_SEED:-1}" \
    --report junit --report-dir target/contract \
    || status=$?
if grep -q ' ERROR ' "$dir/api.log"; then
    echo "errors in the API's log:"; grep ' ERROR ' "$dir/api.log"
    status=1
fi
exit "$status"

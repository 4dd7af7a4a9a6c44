# Drover's recipes. `just` with no recipe lists them.

# List the recipes
default:
    @just --list

# Run the whole stack locally (API, worker, scheduler; a Redis if none answers)
run:
    cargo run

# Run every test (set TEST_DATABASE_URL=postgres://… to test PostgreSQL too)
test:
    cargo test --workspace

# Check formatting and lints, as CI does
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code
fmt:
    cargo fmt --all

# Apply the database migrations to DATABASE_URL
migrate:
    cargo run -- migrate

# Benchmark the queue against REDIS_URL (see docs/BENCHMARKS.md)
bench jobs="100000" concurrency="50":
    cargo run --release -- bench queue --jobs {{jobs}} --concurrency {{concurrency}}

# Soak: 1,000,000 no-op jobs with the default retention; Redis memory and archive rows/s (see docs/BENCHMARKS.md)
bench-retention jobs="1000000" database="sqlite":
    cargo build --release -p drover-ops && ./target/release/drover bench retention --jobs {{jobs}} --database {{database}}

# Export of N archived jobs through a real drover-worker: rows/s and its RSS (see docs/BENCHMARKS.md)
bench-export rows="1000000" database="sqlite":
    cargo build --release -p drover-ops -p drover-worker && ./target/release/drover bench export --rows {{rows}} --database {{database}}

# Upload and analysis of a generated CSV through the real API and worker (see docs/BENCHMARKS.md)
bench-analysis rows="1000000":
    cargo build --release -p drover-ops -p drover-worker -p drover-api && ./target/release/drover bench analysis --rows {{rows}}

# Benchmark job submission over HTTP with wrk, 32 keep-alive connections (see docs/BENCHMARKS.md)
bench-api duration="30s" connections="32":
    BENCH_DURATION={{duration}} BENCH_CONNECTIONS={{connections}} ops/scripts/bench-api.sh

# Contract-test the HTTP API with schemathesis against a fresh drover-api (see docs/CONTRACT.md)
contract examples="15" seed="1":
    CONTRACT_EXAMPLES={{examples}} CONTRACT_SEED={{seed}} ops/scripts/contract.sh

# Benchmark Server-Sent Events: one API, N clients on loopback (see docs/BENCHMARKS.md)
bench-sse clients="10000" events="200" rate="10":
    ulimit -n 20000 && cargo bench -p drover-api --bench sse -- --clients {{clients}} --events {{events}} --rate {{rate}}

# Run exactly what CI runs
ci:
    bash .ci/run

#!/usr/bin/env bash
# A local Redis Cluster for trying Drover on a cluster and for `drover bench queue
# --queues 4`: three masters with REPLICAS replicas each (default 1), on ports from
# PORT (default 7000), data under DIR (default ./data/cluster), nothing persisted.
#
#   ops/scripts/local-cluster.sh start [PORT] [DIR]   # prints the REDIS_URL to use
#   ops/scripts/local-cluster.sh stop  [PORT] [DIR]
set -euo pipefail
cmd="${1:-start}"
port="${2:-7000}"
dir="${3:-./data/cluster}"
replicas="${REPLICAS:-1}"
ports=$(seq "$port" $((port + 3 * (1 + replicas) - 1)))

case "$cmd" in
  start)
    for p in $ports; do
      mkdir -p "$dir/$p"
      redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --save "" --appendonly no --daemonize yes --logfile "$dir/$p/redis.log" \
        --pidfile "$dir/$p/redis.pid"
    done
    for p in $ports; do
      until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.05; done
    done
    redis-cli --cluster create $(for p in $ports; do printf '127.0.0.1:%s ' "$p"; done) \
      --cluster-replicas "$replicas" --cluster-yes >/dev/null
    until redis-cli -p "$port" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
    echo "redis+cluster://127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"
    ;;
  stop)
    for p in $(seq "$port" $((port + 11))); do
      [ -f "$dir/$p/redis.pid" ] && kill -9 "$(cat "$dir/$p/redis.pid")" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop [PORT] [DIR]" >&2
    exit 2
    ;;
esac

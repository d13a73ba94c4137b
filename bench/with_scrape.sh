#!/usr/bin/env bash
# Runs a broker (exec: same pid) while its /metrics is scraped once a second, as Prometheus
# would: `bench/with_scrape.sh <http-port> <broker command...>`. The scraper runs on CPU 0 (the
# load generator's), so the broker's CPU pays only for answering. Used by the *-http brokers.
port=$1
shift
broker=$$
(
  while sleep 1; do
    kill -0 "$broker" 2>/dev/null || exit 0
    taskset -c 0 curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/metrics" || true
  done
) &
exec "$@"

# mqttx: `make run` starts the broker, `make test` runs every test on Deno and Bun.
# deno and bun come from npm (devDependencies); a system deno/bun wins when present.
export PATH := $(PATH):$(CURDIR)/node_modules/.bin

CONFIG ?= config.example.yml
SRC_DIRS := src tests

.PHONY: deps run run-bun test test-deno test-bun check fmt compile compile-bun clean bench bench-slow bench-redis bench-persistent bench-cluster fuzz bench-deps

# npm ci writes node_modules/.package-lock.json: reinstall when it is missing or stale.
deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package-lock.json package.json
	npm ci
	@touch $@

run: deps
	deno run -A src/main.ts --config $(CONFIG)

run-bun: deps
	bun src/main_bun.ts --config $(CONFIG)

# Both runtimes always run; the target fails if either failed.
test: deps
	@status=0; \
	$(MAKE) --no-print-directory test-deno || status=1; \
	$(MAKE) --no-print-directory test-bun || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$status

test-deno: deps
	deno test -A $(SRC_DIRS)

test-bun: deps
	bun test $(addprefix ./,$(SRC_DIRS))

# The core must never name a runtime: only src/runtime/ and the entry files may.
check: deps
	deno fmt --check
	deno lint
	deno check $(SRC_DIRS)
	@if grep -rnE '(^|[^A-Za-z0-9_.])(Deno|Bun)\.' src --include='*.ts' \
	    | grep -vE '^src/(runtime/|main\.ts:|main_bun\.ts:)'; then \
	  echo "check: Deno./Bun. used outside src/runtime/ and the entry files"; exit 1; \
	fi
	@if grep -rlE '(writableState|createSession|WritableSession)' src --include='*.ts' \
	    | grep -vE '^src/broker/session(_state|_lifecycle|_subscriptions)?\.ts$$|_test\.ts$$'; then \
	  echo "check: session state changed outside src/broker/session*.ts (see session.ts)"; exit 1; \
	fi

fmt: deps
	deno fmt

# Needs network on first use: deno downloads its runtime (denort) for the target.
compile: deps
	deno compile -A --output dist/mqttx src/main.ts

# Works offline: bun embeds itself.
compile-bun: deps
	bun build --compile --bytecode --format=esm src/main_bun.ts --outfile dist/mqttx

# Benchmark against Mosquitto and Aedes (bench/README.md) with the project's load generator
# (bench/loadgen, C; LOADGEN=<binary or folder> for another one). RUNS=1 for a quick pass;
# SCENARIOS=S1,S3 BROKERS=mqttx-bun,mosquitto to narrow it. Results go to bench/results/.
bench: compile-bun bench-deps
	deno run -A bench/run.ts
	deno run -A bench/persistent.ts

# Broker memory under S2 QoS 1 with a subscriber that reads slowly (bench/slow_subscriber.ts).
bench-slow: deps bench-deps
	deno run -A bench/slow_subscriber.ts

# Aedes from npm (pinned in bench/package.json); Mosquitto, Node and a C compiler are Debian
# packages: named when missing (a baseline left out of BROKERS is not needed).
bench-deps: deps
	@wants() { case ",$${BROKERS:-$$1}," in *,$$1,*) return 0;; *) return 1;; esac; }; \
	need() { command -v $$1 >/dev/null || [ -x /usr/sbin/$$1 ] || \
	  { echo "make bench: $$1 not found: sudo apt-get install $$2"; exit 1; }; }; \
	need make make; command -v cc >/dev/null || need gcc gcc; \
	if wants mosquitto; then need mosquitto mosquitto; fi; \
	if wants aedes; then need node nodejs; \
	  [ -f bench/node_modules/aedes/package.json ] || npm ci --prefix bench; fi

# S4 with persistent sessions: mqttx on Redis against Mosquitto with persistence (bench/persistent.ts).
bench-persistent: deps
	deno run -A bench/persistent.ts

# Redis store figures: commands and round trips per delivered message, memory per offline session.
bench-redis: deps
	deno run -A bench/redis_store.ts

# Stateful fuzzer against a real broker process (tests/fuzz/fuzz.ts); not part of `make test`.
# FUZZ_SECONDS (default 60), FUZZ_RUNTIME=deno|bun, FUZZ_SEED to replay a failing run.
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) deno run -A tests/fuzz/fuzz.ts

# The Kafka bridge's cost and throughput against librdkafka's mock cluster (bench/kafka_bridge.ts).
.PHONY: bench-kafka
bench-kafka: deps
	deno run -A bench/kafka_bridge.ts

clean:
	rm -rf dist

# The cost of the cluster with the load generator: S4 and S1 on two nodes vs one, cross-node p99
# (bench/cluster_loadgen.ts). `deno run -A bench/cluster.ts` is the older MQTT.js-client version.
bench-cluster: deps
	deno run -A bench/cluster_loadgen.ts

/**
 * `make bench-kafka`: the Kafka bridge's cost and throughput, against
 * librdkafka's mock cluster (tests/kafka_mock/mock_cluster.c, pinned to CPU 0
 * with the load generator; the broker on CPU 1).
 *
 * 1. S1 QoS 0 (1000 publishers × 100 × 1 KiB, no subscribers) on mqttx with no
 *    bridge and with every topic bridged (`topics: ["#"]`, all into Kafka topic
 *    `bench`), taking turns, RUNS times: publish msg/s of each and their ratio;
 *    bridged msg/s = records Kafka acknowledged ÷ time from the load generator's
 *    start until the bridge's buffer was empty; dropped records.
 * 2. Kafka → MQTT: N records produced with kcat to a mapped topic, time until a
 *    mosquitto_sub subscriber has them all.
 *
 *   deno run -A bench/kafka_bridge.ts        RUNS (3), BROKER (bun|deno|bin), N (50000)
 */
import {
  BUILD,
  buildLoadgen,
  firstConnack,
  ROOT,
  sh,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const RUNS = Number(Deno.env.get("RUNS") ?? 3);
const N = Number(Deno.env.get("N") ?? 50_000);
const BROKER = Deno.env.get("BROKER") ?? "bun";
let port = Number(Deno.env.get("BENCH_PORT") ?? 18950);

await Deno.mkdir(`${BUILD}/logs`, { recursive: true });
const mockBin = `${BUILD}/mock_cluster`;
const built = await sh([
  "sh",
  "-c",
  `gcc -O2 -o ${mockBin} tests/kafka_mock/mock_cluster.c $(pkg-config --cflags --libs rdkafka)`,
]);
if (!built.ok) throw new Error(`mock_cluster build: ${built.text}`);
const loadgen = await buildLoadgen();

// The mock cluster: its first stdout line is the bootstrap address.
const mock = new Deno.Command("taskset", {
  args: ["-c", "0", mockBin, "bench:8", "cmd:4"],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = mock.stdout.pipeThrough(new TextDecoderStream()).getReader();
const bootstrap = (await reader.read()).value!.split("\n")[0];

function brokerCommand(config: string): string[] {
  if (BROKER === "deno") return ["deno", "run", "-A", "src/main.ts", "--config", config];
  if (BROKER === "bin") return [`${ROOT}/dist/mqttx`, "--config", config];
  return ["bun", "src/main_bun.ts", "--config", config];
}

async function startBroker(bridge: string) {
  const p = port++;
  const config = `${BUILD}/kafka-${p}.yml`;
  await Deno.writeTextFile(
    config,
    `host: 127.0.0.1\nsocket: {enable: true, port: ${p}}\nsys-topic: {enable: true}\n${bridge}`,
  );
  const child = spawnPinned(1, brokerCommand(config), `${BUILD}/logs/kafka-${p}.log`);
  let exited = false;
  child.status.then(() => (exited = true));
  await firstConnack(p, performance.now(), () => exited);
  return { child, port: p };
}

async function status(p: number): Promise<Record<string, number | string>> {
  const r = await sh([
    "mosquitto_sub",
    ...["-p", String(p), "-t", "$SYS/broker/bridge/kafka", "-C", "1", "-W", "5"],
  ]);
  return JSON.parse(r.text.trim().split("\n")[0]);
}

const bridgeAll = `message-bridge:
  enable: true
  kafka-brokers: ["${bootstrap}"]
  topics: [{topic: "#", kafka-topic: bench}]
`;

const rows: string[] = [];
const ratios: number[] = [];
for (let run = 1; run <= RUNS; run++) {
  const rates: Record<string, number> = {};
  for (const variant of ["plain", "bridged"] as const) {
    const b = await startBroker(variant === "bridged" ? bridgeAll : "");
    const t0 = performance.now();
    const lg = await sh([
      "taskset",
      ...["-c", "0", loadgen, "--port", String(b.port), "--pub", "1000", "--size", "1024"],
      ...["--count", "100", "--qos", "0", "--timeout", "90", "--quiet"],
    ]);
    const result = JSON.parse(lg.text.slice(lg.text.indexOf("RESULT ") + 7).split("\n")[0]);
    rates[variant] = result.pub_rate;
    let extra = "";
    if (variant === "bridged") {
      let s = await status(b.port);
      while (Number(s.buffered) > 0 || Number(s.sent) + Number(s.dropped) < result.pub_acked) {
        await sleep(100);
        s = await status(b.port);
      }
      const seconds = (performance.now() - t0) / 1000;
      extra = ` | ${Math.round(Number(s.sent) / seconds)} | ${s.sent} | ${s.dropped}`;
    } else extra = " | | |";
    rows.push(`| ${run} | ${variant} | ${Math.round(result.pub_rate)}${extra} |`);
    await stop(b.child);
  }
  ratios.push(rates.bridged / rates.plain);
}

// Kafka → MQTT: N records into `cmd`, published on cmd/{key}.
const inbound = await startBroker(`message-bridge:
  enable: true
  kafka-brokers: ["${bootstrap}"]
  from-kafka: [{kafka-topic: cmd, mqtt-topic: "cmd/{key}"}]
`);
while ((await status(inbound.port)).consumer !== "joined") await sleep(200);
const sub = new Deno.Command("mosquitto_sub", {
  args: ["-p", String(inbound.port), "-t", "cmd/#", "-C", String(N)],
  stdout: "null",
}).spawn();
await sleep(500);
const lines = Array.from({ length: N }, (_, i) => `dev${i % 100}\t${"x".repeat(64)}`).join("\n");
await Deno.writeTextFile(`${BUILD}/kafka-records.txt`, lines + "\n");
const t0 = performance.now();
await sh([
  "sh",
  "-c",
  `kcat -b ${bootstrap} -P -t cmd -K '\t' -X log_level=0 < ${BUILD}/kafka-records.txt`,
]);
await sub.status;
const inboundRate = Math.round(N / ((performance.now() - t0) / 1000));
await stop(inbound.child);
mock.stdin.close();
await mock.status;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
console.log(`# Kafka bridge (broker: mqttx-${BROKER}, mock cluster, load average ${load})\n`);
console.log(
  "| run | broker | S1 qos0 pub msg/s | bridged msg/s into Kafka | records sent | dropped |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
console.log(
  `\nbridged ÷ plain publish rate, per run: ${ratios.map((r) => r.toFixed(2)).join(", ")}; ` +
    `median ${median(ratios).toFixed(2)}`,
);
console.log(`Kafka → MQTT: ${N} records of 64 B in ${inboundRate} records/s to one subscriber`);

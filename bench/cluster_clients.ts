/**
 * The client side of bench/cluster.ts: 50 MQTT.js publishers on one port and
 * 50 subscribers on another (a topic per pair, QoS 1, 256 B, 10 s), flat out
 * (64 unacknowledged per publisher) or at a fixed rate per pair. Prints
 * `RESULT {"rate": delivered msg/s, "p99": ms, "lost": acknowledged - delivered,
 * "received": delivered in the measured window}`.
 *
 *   deno run -A bench/cluster_clients.ts PUB_PORT SUB_PORT RATE
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { Buffer } from "node:buffer";

const [pubPort, subPort, rate] = Deno.args.map(Number);
const PAIRS = 50, SIZE = 256, SECONDS = 10, WINDOW = 64;
const connect = (port: number, id: string) =>
  new Promise<MqttClient>((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: id, reconnectPeriod: 0 });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });

const run = Math.random().toString(36).slice(2, 8);
const subs = await Promise.all(
  [...Array(PAIRS).keys()].map((i) => connect(subPort, `s${run}${i}`)),
);
const pubs = await Promise.all(
  [...Array(PAIRS).keys()].map((i) => connect(pubPort, `p${run}${i}`)),
);
const topic = (i: number) => `cb/${run}/${i}`;
let measuring = false;
let received = 0;
const latencies: number[] = [];
const ready = new Set<number>();
await Promise.all(subs.map((s, i) => s.subscribeAsync(topic(i), { qos: 1 })));
subs.forEach((s, i) =>
  s.on("message", (_t, payload) => {
    if (payload.length < SIZE) return void ready.add(i); // a probe
    if (!measuring) return;
    received++;
    if (rate > 0) {
      latencies.push(
        performance.now() - new DataView(payload.buffer, payload.byteOffset).getFloat64(0),
      );
    }
  })
);
// Routes travel asynchronously: probe until every pair delivers.
while (ready.size < PAIRS) {
  pubs.forEach((p, i) => ready.has(i) || p.publish(topic(i), "probe", { qos: 0 }));
  await new Promise((r) => setTimeout(r, 100));
}

let acked = 0;
const payload = () => {
  const b = new Uint8Array(SIZE);
  new DataView(b.buffer).setFloat64(0, performance.now());
  return b;
};
measuring = true;
const end = performance.now() + SECONDS * 1000;
if (rate === 0) {
  await Promise.all(pubs.map((p, i) =>
    new Promise<void>((resolve) => {
      let open = 0;
      const send = () => {
        while (open < WINDOW && performance.now() < end) {
          open++;
          p.publish(topic(i), Buffer.from(payload()), { qos: 1 }, (err) => {
            open--;
            if (!err) acked++;
            if (performance.now() < end) send();
            else if (open === 0) resolve();
          });
        }
        if (open === 0) resolve();
      };
      send();
    })
  ));
} else {
  const perTick = rate / 20; // every 50 ms
  while (performance.now() < end) {
    pubs.forEach((p, i) => {
      for (let k = 0; k < perTick; k++) {
        p.publish(topic(i), Buffer.from(payload()), { qos: 1 }, (err) => err || acked++);
      }
    });
    await new Promise((r) => setTimeout(r, 50));
  }
}
const sentFor = SECONDS;
let last = -1;
while (received !== last) {
  last = received;
  await new Promise((r) => setTimeout(r, 1000));
}
latencies.sort((a, b) => a - b);
const p99 = latencies.length ? latencies[Math.floor(latencies.length * 0.99)] : 0;
const result = { rate: received / sentFor, p99, lost: acked - received, received };
console.log(`RESULT ${JSON.stringify(result)}`);
for (const c of [...pubs, ...subs]) c.end(true);
Deno.exit(0);

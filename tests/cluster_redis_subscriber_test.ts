/**
 * The Redis bus's subscriber (src/cluster/redis_subscriber.ts) against a real redis-server:
 * binary messages of any size arrive whole and in order (a large one spans many reads, many
 * small ones share a read), each on its channel's handler; a refused password is retried;
 * after Redis restarts it subscribes again and `whenReady()` says when.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { RedisPublisher } from "../src/cluster/redis_publisher.ts";
import { RedisSubscriber } from "../src/cluster/redis_subscriber.ts";
import { mustRun } from "./helpers/harness.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";

const skip = !redisServerAvailable() && !mustRun() ? "needs redis-server" : false;
let server: RedisServer | undefined;

before(async () => {
  if (!skip) server = await RedisServer.start({ password: "pw" });
});
after(async () => {
  await server?.dispose();
});

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `n` bytes counting up from `seed` (every byte value, "\r\n" and "*" included). */
function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (seed + i) & 0xff);
}

test("messages of any size arrive whole, in order, on their channel's handler", {
  skip,
  timeout: 30_000,
}, async () => {
  const url = `redis://:pw@127.0.0.1:${server!.port}`;
  const sub = new RedisSubscriber(url);
  const a: Buffer[] = [], b: string[] = [];
  await sub.subscribe(["a"], (p) => a.push(Buffer.from(p))); // copied: the view is the read's
  await sub.subscribe(["b", "c"], (p) => b.push(p.toString()));
  const pub = new RedisPublisher(url);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    const p = bytes(i === 100 ? 300_000 : i % 40, i);
    sent.push(p);
    pub.publish("a", p);
    if (i % 50 === 0) pub.publish(i % 100 === 0 ? "b" : "c", new TextEncoder().encode(`n${i}`));
  }
  pub.publish("other", bytes(10, 0)); // not subscribed: nobody hears it
  await until(() => a.length === sent.length, "every message on a");
  for (let i = 0; i < sent.length; i++) assert.deepEqual(new Uint8Array(a[i]), sent[i], `#${i}`);
  assert.deepEqual(b, ["n0", "n50", "n100", "n150", "n200", "n250"]);
  pub.close();
  sub.close();
});

test("a refused password is retried; after a restart of Redis it subscribes again", {
  skip,
  timeout: 30_000,
}, async () => {
  const sub = new RedisSubscriber(`redis://:wrong@127.0.0.1:${server!.port}`, 100);
  let ready = false;
  void sub.subscribe(["x"], () => {}).then(() => ready = true);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(ready, false, "never ready with a wrong password");
  sub.close();
  assert.equal(sub.isReady, false);

  const url = `redis://:pw@127.0.0.1:${server!.port}`;
  const good = new RedisSubscriber(url, 100);
  const got: string[] = [];
  await good.subscribe(["x"], (p) => got.push(p.toString()));
  assert.equal(good.isReady, true);
  await server!.stop();
  await until(() => !good.isReady, "the lost connection noticed");
  await new Promise((r) => setTimeout(r, 300)); // a few refused reconnects
  await server!.restart();
  await good.whenReady();
  const pub = new RedisPublisher(url);
  pub.publish("x", new TextEncoder().encode("after"));
  await until(() => got.includes("after"), "a message after the restart");
  pub.close();
  good.close();
});

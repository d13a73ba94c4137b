/**
 * The Redis bus's frame publisher (src/cluster/redis_publisher.ts) against a
 * real redis-server that requires a password: a refused AUTH is a failed
 * connection, logged once however often it retries, and logged again when a
 * retry is let in; the frames published after that arrive. A user that may not run CLIENT
 * REPLY OFF gets every frame answered instead, and they arrive all the same; that is logged
 * once, not again at each connection. A user that may not PING (least privilege: @pubsub) is
 * let in all the same, as before the publisher sent PING; so is a Redis still loading its
 * dataset (it refuses PING, not PUBLISH).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { spawn } from "node:child_process";
import net from "node:net";
import { RedisPublisher } from "../src/cluster/redis_publisher.ts";
import { mustRun } from "./helpers/harness.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";

const skip = !redisServerAvailable() && !mustRun() ? "needs redis-server" : false;
let server: RedisServer | undefined;

before(async () => {
  if (!skip) server = await RedisServer.start({ password: "right" });
});
after(async () => {
  await server?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a wrong password: logged once while retrying, again once let in; frames then arrive", {
  skip,
  timeout: 30_000,
}, async () => {
  const admin = createClient({ url: `redis://:right@127.0.0.1:${server!.port}` });
  const sub = admin.duplicate();
  await Promise.all([admin.connect(), sub.connect()]);
  const got: string[] = [];
  await sub.subscribe("frames", (m) => got.push(m));
  const logs: string[] = [];
  // A small back-off cap, so the second's publishing below retries several times.
  const p = new RedisPublisher(
    `redis://:wrong@127.0.0.1:${server!.port}`,
    (l) => logs.push(l),
    100,
  );
  try {
    for (let i = 0; i < 50; i++) {
      p.publish("frames", new TextEncoder().encode(`lost ${i}`));
      await p.settled(500); // answered by the error, or the connection is gone
      await sleep(20);
    }
    assert.equal(logs.length, 1, logs.join("\n"));
    assert.match(logs[0], /cannot publish frames on Redis \(Redis answered WRONGPASS/);
    // The password the URL names becomes the right one: the next retry is let in.
    await admin.sendCommand(["CONFIG", "SET", "requirepass", "wrong"]);
    const deadline = Date.now() + 5_000;
    while (logs.length < 2 && Date.now() < deadline) {
      p.publish("frames", new TextEncoder().encode("probe"));
      await sleep(50);
    }
    assert.deepEqual(logs.slice(1), ["cluster: publishing frames on Redis again"]);
    p.publish("frames", new TextEncoder().encode("after"));
    await p.settled();
    while (!got.includes("after") && Date.now() < deadline) await sleep(20);
    assert.ok(got.includes("after"), "a frame published once let in arrives");
    assert.ok(!got.some((m) => m.startsWith("lost")), "nothing was taken before");
  } finally {
    p.close();
    await sub.close();
    await admin.close();
  }
});

test("a Redis user refused CLIENT REPLY: every frame answered, taken, settled", {
  skip,
  timeout: 30_000,
}, async () => {
  const own = await RedisServer.start(); // no password: the other test changes that one's
  const admin = createClient({ url: `redis://127.0.0.1:${own.port}` });
  const sub = admin.duplicate();
  await Promise.all([admin.connect(), sub.connect()]);
  // May publish, not run CLIENT (an ACL as some hosted Redis set): the frames still go out.
  await admin.sendCommand([
    "ACL",
    "SETUSER",
    "pubonly",
    "on",
    ">pw",
    "allchannels",
    "+@all",
    "-client",
  ]);
  const got: string[] = [];
  await sub.subscribe("frames", (m) => got.push(m));
  const logs: string[] = [];
  const p = new RedisPublisher(`redis://pubonly:pw@127.0.0.1:${own.port}`, (l) => logs.push(l));
  try {
    for (let i = 0; i < 200; i++) p.publish("frames", new TextEncoder().encode(`f${i}`));
    await p.settled(10_000);
    p.publish("frames", new TextEncoder().encode("last"));
    await p.settled(10_000);
    const deadline = Date.now() + 5_000;
    while (got.length < 201 && Date.now() < deadline) await sleep(20);
    assert.deepEqual(got, [...Array(200).keys()].map((i) => `f${i}`).concat("last"), logs.join());
    assert.equal(logs.length, 1, logs.join("\n"));
    assert.match(logs[0], /refused CLIENT REPLY OFF \(NOPERM/);
    // A connection made again (Redis dropped it: a restart, an idle timeout) is refused again:
    // not logged again, the ACL did not change.
    await admin.sendCommand(["CLIENT", "KILL", "USER", "pubonly"]);
    const again = Date.now() + 10_000;
    while (!got.includes("again") && Date.now() < again) {
      p.publish("frames", new TextEncoder().encode("again"));
      await p.settled(1_000);
      await sleep(20);
    }
    assert.ok(got.includes("again"), logs.join("\n"));
    assert.equal(logs.filter((l) => l.includes("CLIENT REPLY")).length, 1, logs.join("\n"));
  } finally {
    p.close();
    await sub.close();
    await admin.close();
    await own.dispose();
  }
});

test("a Redis user that may publish but not PING or run CLIENT: frames arrive, settled", {
  skip,
  timeout: 30_000,
}, async () => {
  const own = await RedisServer.start();
  const admin = createClient({ url: `redis://127.0.0.1:${own.port}` });
  const sub = admin.duplicate();
  await Promise.all([admin.connect(), sub.connect()]);
  // Least privilege, by category: PUBLISH and SUBSCRIBE are @pubsub; PING is not.
  await admin.sendCommand(["ACL", "SETUSER", "bus", "on", ">pw", "allchannels", "+@pubsub"]);
  const got: string[] = [];
  await sub.subscribe("frames", (m) => got.push(m));
  const logs: string[] = [];
  const p = new RedisPublisher(`redis://bus:pw@127.0.0.1:${own.port}`, (l) => logs.push(l));
  try {
    const deadline = Date.now() + 10_000;
    while (got.length === 0 && Date.now() < deadline) {
      p.publish("frames", new TextEncoder().encode("first"));
      await p.settled(1_000);
      await sleep(50);
    }
    assert.ok(got.includes("first"), logs.join("\n"));
    const sent = [...Array(20).keys()].map((i) => `n${i}`);
    for (const f of sent) assert.ok(p.publish("frames", new TextEncoder().encode(f)), f);
    await p.settled(10_000);
    while (!got.includes("n19") && Date.now() < deadline) await sleep(20);
    assert.deepEqual(got.filter((m) => m.startsWith("n")), sent, logs.join("\n"));
    assert.ok(!logs.some((l) => l.includes("cannot publish")), logs.join("\n"));
  } finally {
    p.close();
    await sub.close();
    await admin.close();
    await own.dispose();
  }
});

/** Redis's first reply line to a PING on a new connection. */
function pingReply(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("PING\r\n"));
    let got = "";
    s.on("data", (d: Uint8Array) => {
      got += new TextDecoder().decode(d);
      if (got.includes("\r\n")) (s.destroy(), resolve(got.split("\r\n")[0]));
    });
    s.on("error", (e) => resolve(String(e)));
  });
}

test("a Redis loading its dataset (PING refused, PUBLISH taken): frames go out", {
  skip,
  timeout: 60_000,
}, async () => {
  const own = await RedisServer.start();
  const admin = createClient({ url: `redis://127.0.0.1:${own.port}` });
  await admin.connect();
  await Promise.all([...Array(3000).keys()].map((i) => admin.set(`k${i}`, "v")));
  await admin.sendCommand(["SAVE"]);
  await admin.close();
  await own.stop();
  // Started again on that snapshot, loading it slowly (3 ms a key, events every KB read).
  const loading = spawn("redis-server", [
    ...["--port", String(own.port), "--bind", "127.0.0.1", "--dir", own.dir, "--save", ""],
    ...["--key-load-delay", "3000", "--loading-process-events-interval-bytes", "1024"],
  ], { stdio: "ignore" });
  const exited = new Promise((r) => loading.once("exit", r));
  const logs: string[] = [];
  const p = new RedisPublisher(`redis://127.0.0.1:${own.port}`, (l) => logs.push(l));
  const sub = createClient({ url: `redis://127.0.0.1:${own.port}` });
  try {
    const deadline = Date.now() + 10_000;
    while (!(await pingReply(own.port)).startsWith("-LOADING") && Date.now() < deadline) {
      await sleep(20);
    }
    await sub.connect();
    const got: string[] = [];
    await sub.subscribe("frames", (m) => got.push(m));
    const sent = [...Array(10).keys()].map((i) => `f${i}`);
    for (const f of sent) {
      assert.ok(p.publish("frames", new TextEncoder().encode(f)), `${f}: ${logs.join("\n")}`);
      await p.settled(5_000);
      await sleep(20);
    }
    while (got.length < sent.length && Date.now() < deadline) await sleep(20);
    assert.match(await pingReply(own.port), /^-LOADING/, "still loading: the test is void");
    assert.deepEqual(got, sent, logs.join("\n"));
    assert.deepEqual(logs, []);
  } finally {
    p.close();
    await sub.close().catch(() => {});
    loading.kill();
    await exited;
    await own.dispose();
  }
});

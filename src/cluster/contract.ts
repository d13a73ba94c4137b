/**
 * The one contract test suite every ClusterBus passes
 * (tests/cluster_bus_redis_test.ts runs it against the Redis bus,
 * tests/cluster_bus_kafka_test.ts against the Kafka bus).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { MessageData } from "../store/types.ts";
import {
  type BusHandlers,
  type BusMessage,
  type ClusterBus,
  DuplicateNodeError,
  type NodeId,
} from "./types.ts";

export const CONTRACT_HEARTBEAT_MS = 100;
export const CONTRACT_NODE_TIMEOUT_MS = 800;

export interface BusBackend {
  /** A bus for node `id`; buses of one backend form one cluster (heartbeats as above). */
  bus(id: NodeId): ClusterBus;
  /** Stop `bus` as a killed process would: no leave, no more heartbeats. */
  crash(bus: ClusterBus): Promise<void>;
  dispose(): Promise<void>;
}

/** What a bus reported to its node, for assertions. */
export class Recorder implements BusHandlers {
  readonly messages: { from: NodeId; msg: BusMessage }[] = [];
  readonly routeChanges: { node: NodeId; filter: string; present: boolean }[] = [];
  tables: ReadonlyMap<NodeId, readonly string[]>[] = [];
  readonly up: NodeId[] = [];
  readonly down: { node: NodeId; wills: readonly MessageData[]; heir: boolean }[] = [];
  message(from: NodeId, msg: BusMessage): void {
    this.messages.push({ from, msg });
  }
  route(node: NodeId, filter: string, present: boolean): void {
    this.routeChanges.push({ node, filter, present });
  }
  routes(table: ReadonlyMap<NodeId, readonly string[]>): void {
    this.tables.push(table);
  }
  nodeUp(node: { id: NodeId }): void {
    this.up.push(node.id);
  }
  nodeDown(node: NodeId, wills: readonly MessageData[], heir: boolean): void {
    this.down.push({ node, wills, heir });
  }
  state(): void {}
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `o` without `drop` and without the keys whose value is undefined. */
function withoutUndefined(o: object, drop: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => k !== drop && v !== undefined));
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

export interface BusContractOptions {
  /** A fresh backend per test (its own cluster). */
  backend(): Promise<BusBackend>;
  skip?: string | false;
}

export function runBusContract(name: string, o: BusContractOptions): void {
  const t = (title: string, body: (b: BusBackend) => Promise<void>, skip = o.skip) =>
    test(title, { skip, timeout: 60_000 }, async () => {
      const backend = await o.backend();
      try {
        await body(backend);
      } finally {
        await backend.dispose();
      }
    });

  const joined = async (backend: BusBackend, id: NodeId) => {
    const bus = backend.bus(id);
    const rec = new Recorder();
    await bus.join(rec);
    return { bus, rec };
  };

  describe(`ClusterBus contract: ${name}`, () => {
    t("nodes see each other join; a duplicate live id is refused", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      await until(() => a.rec.up.includes("b"), "a hears of b");
      assert.deepEqual(n2.bus.nodes().map((n) => n.id).sort(), ["a", "b"]);
      await assert.rejects(b.bus("a").join(new Recorder()), DuplicateNodeError);
      await a.bus.leave();
      await n2.bus.leave();
    });

    t("routes: changes reach the others, a node joining later reads them all", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      await until(() => n2.rec.tables.length > 0, "b's first table");
      a.bus.route("x/+", true);
      a.bus.route("$share/g/y", true);
      await until(() => n2.rec.routeChanges.length === 2, "two route changes");
      assert.deepEqual(n2.rec.routeChanges[0], { node: "a", filter: "x/+", present: true });
      const c = await joined(b, "c");
      assert.deepEqual([...(c.rec.tables.at(-1)!.get("a") ?? [])].sort(), ["$share/g/y", "x/+"]);
      a.bus.route("x/+", false);
      await until(() => n2.rec.routeChanges.length === 3, "a removal");
      assert.equal(n2.rec.routeChanges[2].present, false);
      for (const n of [a, n2, c]) await n.bus.leave();
    });

    t(
      "send: to one node, in order, payload and properties intact; broadcast to the others",
      async (b) => {
        const a = await joined(b, "a");
        const n2 = await joined(b, "b");
        const c = await joined(b, "c");
        const N = 300;
        for (let i = 0; i < N; i++) {
          a.bus.send("b", {
            kind: "publish",
            message: {
              topic: "t",
              payload: new TextEncoder().encode(`p${i}`),
              qos: 1,
              retain: false,
              properties: { contentType: "text/plain" },
              from: "client",
            },
            ack: i,
            // A QoS 2 resend names its first forward (qos2_resend.ts).
            resendOf: i % 2 === 0 ? 2 ** 48 + i : undefined,
          });
        }
        a.bus.broadcast({ kind: "retained", topic: "r" });
        const pubs = () => n2.rec.messages.filter((m) => m.msg.kind === "publish");
        await until(() => pubs().length === N, `${N} messages`);
        pubs().forEach((m, i) => {
          assert.equal(m.from, "a");
          assert.ok(m.msg.kind === "publish");
          assert.equal(text(m.msg.message.payload), `p${i}`);
          assert.equal(m.msg.message.properties?.contentType, "text/plain");
          assert.equal(m.msg.ack, i);
          assert.equal(m.msg.resendOf, i % 2 === 0 ? 2 ** 48 + i : undefined);
        });
        const bc = (r: Recorder) => r.messages.filter((m) => m.msg.kind === "retained").length;
        await until(() => bc(n2.rec) === 1 && bc(c.rec) === 1, "broadcast on b and c");
        assert.equal(c.rec.messages.filter((m) => m.msg.kind === "publish").length, 0);
        assert.equal(bc(a.rec), 0, "not back to the sender");
        for (const n of [a, n2, c]) await n.bus.leave();
      },
    );

    t(
      "one turn's many messages (frames): all arrive, in order per receiver, broadcasts too",
      async (b) => {
        const a = await joined(b, "a");
        const n2 = await joined(b, "b");
        const c = await joined(b, "c");
        const pub = (i: number): BusMessage => ({
          kind: "publish",
          message: {
            topic: `t/${i}`,
            // every 50th large: more bytes in the turn than one frame holds
            payload: new Uint8Array(i % 50 === 0 ? 64 * 1024 : 16).fill(i % 251),
            qos: (i % 3) as 0 | 1 | 2,
            retain: i % 7 === 0,
            from: `c${i % 5}`,
            expiresAt: i % 4 === 0 ? 1e12 + i : undefined,
          },
          shares: i % 9 === 0 ? [`g\0t/${i}`] : undefined,
          ack: i % 3 === 0 ? undefined : 2 ** 48 + i,
        });
        const label = (m: BusMessage) =>
          m.kind === "publish"
            ? m.message.topic
            : m.kind === "ack"
            ? `ack ${m.ids.join(",")}${m.counts ? ` × ${m.counts.join(",")}` : ""}`
            : m.kind === "retained"
            ? `retained ${m.topic}`
            : m.kind;
        // All in one synchronous turn: to b and c interleaved, acks, a broadcast in the middle.
        const N = 2_000;
        const want = new Map<NodeId, string[]>([["b", []], ["c", []]]);
        for (let i = 0; i < N; i++) {
          const to = i % 2 ? "b" : "c";
          a.bus.send(to, pub(i));
          want.get(to)!.push(`t/${i}`);
          if (i % 100 === 1) {
            // every other one with counts (a turn's messages share one ack id, acks.ts)
            const counts = i % 200 === 1 ? [3, 2 ** 20] : undefined;
            a.bus.send("b", { kind: "ack", ids: [i, 2 ** 48 + i], ok: i % 200 === 1, counts });
            want.get("b")!.push(`ack ${i},${2 ** 48 + i}${counts ? ` × ${counts.join(",")}` : ""}`);
          }
          if (i === N / 2) {
            a.bus.broadcast({ kind: "retained", topic: "mid" });
            for (const w of want.values()) w.push("retained mid");
          }
        }
        for (const [node, rec] of [["b", n2.rec], ["c", c.rec]] as const) {
          const expected = want.get(node)!;
          await until(() => rec.messages.length >= expected.length, `${node}: every message`);
          await new Promise((r) => setTimeout(r, 200)); // nothing more arrives
          const got = rec.messages.map((m) => label(m.msg));
          // Per destination in the order sent; a broadcast's place among the direct messages
          // is kept by the Redis bus (one connection) but not by Kafka (two topics).
          const direct = (l: string[]) => l.filter((x) => x !== "retained mid");
          assert.deepEqual(direct(got), direct(expected));
          assert.equal(got.length - direct(got).length, 1, "the broadcast, once");
          for (const { from, msg } of rec.messages) {
            assert.equal(from, "a");
            if (msg.kind !== "publish") continue;
            const i = Number(msg.message.topic.slice(2));
            const sent = pub(i);
            assert.ok(sent.kind === "publish");
            const { payload, ...fields } = msg.message;
            assert.deepEqual(new Uint8Array(payload), sent.message.payload, `payload ${i}`);
            assert.deepEqual(fields, withoutUndefined(sent.message, "payload"), `message ${i}`);
            assert.equal(msg.ack, sent.ack);
            assert.deepEqual(msg.shares, sent.shares);
          }
        }
        const acks = n2.rec.messages.flatMap((m) => m.msg.kind === "ack" ? [m.msg] : []);
        assert.deepEqual(acks.map((m) => m.ok), acks.map((_, k) => k % 2 === 0));
        assert.equal(a.rec.messages.length, 0, "nothing back to the sender");
        for (const n of [a, n2, c]) await n.bus.leave();
      },
    );

    t("claim: a new, larger epoch each time, and the previous owner", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      const c1 = await a.bus.claim("client");
      assert.equal(c1.previous, undefined);
      const c2 = await n2.bus.claim("client");
      assert.ok(c2.epoch > c1.epoch);
      assert.equal(c2.previous, "a");
      n2.bus.release("client", c2.epoch);
      const c3 = await a.bus.claim("client");
      assert.equal(c3.previous, undefined, "released");
      assert.deepEqual(await n2.bus.owners(["client", "nobody"]), new Map([["client", "a"]]));
      assert.deepEqual(await n2.bus.ownedBy("a"), ["client"]);
      assert.equal(await n2.bus.claimFrom("client", "b"), 0, "not b's: nothing changes");
      assert.ok(await n2.bus.claimFrom("client", "a") > c3.epoch);
      assert.deepEqual(await n2.bus.ownedBy("b"), ["client"]);
      await a.bus.leave();
      await n2.bus.leave();
    });

    t("a node that dies: every survivor hears it, exactly one gets its wills", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      const c = await joined(b, "c");
      const will = {
        topic: "w",
        payload: new TextEncoder().encode("bye"),
        qos: 1 as const,
        retain: false,
      };
      a.bus.keepWill("k1", will);
      a.bus.keepWill("k2", { ...will, topic: "w2" });
      a.bus.keepWill("k2", undefined); // disconnected cleanly: no will
      await until(() => n2.rec.up.includes("a") && c.rec.up.includes("a"), "a known");
      await new Promise((r) => setTimeout(r, 200));
      await b.crash(a.bus);
      await until(
        () => n2.rec.down.length > 0 && c.rec.down.length > 0,
        "both survivors hear a died",
        CONTRACT_NODE_TIMEOUT_MS * 10,
      );
      const wills = [...n2.rec.down, ...c.rec.down].flatMap((d) => d.wills);
      assert.deepEqual(wills.map((w) => [w.topic, text(w.payload)]), [["w", "bye"]]);
      const heirs = [...n2.rec.down, ...c.rec.down].filter((d) => d.heir);
      assert.equal(heirs.length, 1, "exactly one survivor inherits its sessions");
      assert.ok(!n2.bus.nodes().some((n) => n.id === "a"));
      await n2.bus.leave();
      await c.bus.leave();
    });

    t("a node that leaves is gone at once, with no wills", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      await until(() => n2.rec.up.includes("a"), "a known");
      a.bus.keepWill("k", { topic: "w", payload: new Uint8Array(1), qos: 0, retain: false });
      await a.bus.leave();
      await until(() => n2.rec.down.length === 1, "b hears a left", CONTRACT_NODE_TIMEOUT_MS / 2);
      assert.deepEqual(n2.rec.down[0], { node: "a", wills: [], heir: false });
      await n2.bus.leave();
    });

    t("what a node sent before it left arrives before its leave", async (b) => {
      const a = await joined(b, "a");
      const n2 = await joined(b, "b");
      let seenAtLeave = -1;
      n2.rec.nodeDown = (node, wills, heir) => {
        seenAtLeave = n2.rec.messages.length;
        n2.rec.down.push({ node, wills, heir });
      };
      await until(() => n2.rec.up.includes("a"), "a known");
      // Several frames (batch.ts sends one at MAX_FRAME_BYTES), the last written just before.
      const payload = new Uint8Array(100_000);
      for (let i = 0; i < 20; i++) {
        a.bus.send("b", {
          kind: "publish",
          message: { topic: `t/${i}`, payload, qos: 0, retain: false },
        });
      }
      await a.bus.leave();
      await until(() => n2.rec.down.length === 1, "b hears a left", CONTRACT_NODE_TIMEOUT_MS / 2);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(seenAtLeave, 20, "every message before the leave");
      assert.equal(n2.rec.messages.length, 20);
      assert.deepEqual(n2.rec.up, ["a"], "a left node is not taken for one that joined");
      await n2.bus.leave();
    });
  });
}

// Topic authorization (enable-topic-sub-pub-secure) and the static ACL (acl.*).
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import type { ConnectPacket, QoS, Will } from "../src/mqtt/packet.ts";
import { covers, expand, levels, matchesTopic, requestForms } from "../src/acl/filters.ts";
import { topicAuthorization } from "../src/acl/topic_auth.ts";
import { type AclConfig, staticAcl } from "../src/acl/acl.ts";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, publish, subackCodes, uid, withTimeout } from "./helpers/mqttjs.ts";

afterEach(closeAll);

const TIMEOUT = { timeout: 20_000 };

describe("filter algebra", () => {
  test("covers: an allowed filter covers a request when it matches every topic of it", () => {
    const table: [string, string, boolean][] = [
      ["a/#", "a/b/+", true],
      ["a/#", "a", true], // '#' matches the parent level
      ["a/#", "a/#", true],
      ["a/+", "a/b", true],
      ["a/+", "a/+", true],
      ["a/+", "a/#", false], // a/# also matches a and a/b/c
      ["a/+", "a/b/c", false],
      ["a/b", "a/+", false], // a wildcard request is not covered by a narrower filter
      ["a/b", "a/b", true],
      ["a", "a/b", false],
      ["+/b", "x/b", true],
      ["#", "#", true],
      ["#", "$SYS/x", false], // [MQTT-4.7.2-1]
      ["+/x", "$SYS/x", false],
      ["$SYS/#", "$SYS/broker/+", true],
      ["$SYS/broker/time", "$SYS/#", false],
    ];
    for (const [a, r, want] of table) {
      assert.equal(covers(levels(a), levels(r)), want, `${a} ⊇ ${r}`);
    }
  });

  test("matchesTopic keeps the $ rule", () => {
    assert.equal(matchesTopic(levels("#"), levels("$SYS/x")), false);
    assert.equal(matchesTopic(levels("$SYS/#"), levels("$SYS/x")), true);
    assert.equal(matchesTopic(levels("a/+/c"), levels("a/b/c")), true);
    assert.equal(matchesTopic(levels("a/+"), levels("a/b/c")), false);
  });

  test("placeholders: %c and %u, refused when missing or when they would add wildcards", () => {
    assert.equal(expand("d/%c/%u/#", { clientId: "c1", username: "u1" }), "d/c1/u1/#");
    assert.equal(expand("d/%u", { clientId: "c1" }), undefined);
    assert.equal(expand("d/%c/#", { clientId: "+" }), undefined);
    assert.equal(expand("d/%c/#", { clientId: "a/b" }), undefined);
    assert.equal(expand("d/%u/#", { clientId: "c", username: "#" }), undefined);
    assert.equal(expand("100%/x", { clientId: "c" }), "100%/x");
  });

  test("a shared request is checked as the full string and as its filter", () => {
    assert.deepEqual(requestForms("$share/g/a/b"), [["$share", "g", "a", "b"], ["a", "b"]]);
    assert.deepEqual(requestForms("a/b"), [["a", "b"]]);
  });
});

/** An authenticate hook handing out topic lists, as the HTTP service or users file would. */
function lists(
  byClient: Record<string, { sub?: string[]; pub?: string[] }>,
): BrokerHooks {
  return {
    authenticate: (c) => {
      const l = byClient[c.clientId];
      return l ? { ok: true, authorizedSub: l.sub, authorizedPub: l.pub } : undefined;
    },
  };
}

async function subscribeCodes(
  c: PacketClient,
  filters: string[],
  packetId = 1,
): Promise<number[]> {
  c.send({
    type: 8,
    packetId,
    subscriptions: filters.map((topicFilter) => ({ topicFilter, qos: 1 as QoS })),
  });
  const ack = await c.expect(9);
  assert.equal(ack.packetId, packetId);
  return ack.reasonCodes;
}

function pub(topic: string, payload: string, qos: QoS, packetId?: number) {
  return {
    type: 3 as const,
    topic,
    payload: text(payload),
    qos,
    retain: false,
    dup: false,
    packetId,
  };
}

function connect(b: Broker, opts: Partial<ConnectPacket>) {
  return PacketClient.connect(b, opts).then((r) => r.client);
}

describe("topic authorization (enable-topic-sub-pub-secure)", () => {
  const rights = {
    c1: {
      sub: ["a/#", "devices/%c/#", "$SYS/broker/#", "users/%u/+"],
      pub: ["a/+", "devices/%c/out"],
    },
  };

  test("SUBSCRIBE: each filter must be covered; a refused one gets 0x80 (5.0: 0x87) alone", async () => {
    const b = newBroker({ hooks: [lists(rights), topicAuthorization()] });
    const filters = [
      "a/b/+", // covered by a/#
      "b/x", // nothing covers it
      "#", // wider than a/#
      "devices/c1/t", // devices/%c/#
      "devices/c2/t", // another client's space
      "$share/g/a/x", // its filter a/x is covered
      "$share/g/b/x",
      "$SYS/broker/time",
      "$SYS/#", // wider than $SYS/broker/#
      "users/u1/x", // %u without a username: that entry does not apply
    ];
    const want = [1, 0x80, 0x80, 1, 0x80, 1, 0x80, 1, 0x80, 0x80];
    const c4 = await connect(b, { clientId: "c1" });
    assert.deepEqual(await subscribeCodes(c4, filters), want);
    const c5 = await connect(b, { clientId: "c1", protocolVersion: 5 });
    assert.deepEqual(await subscribeCodes(c5, filters), want.map((x) => x === 0x80 ? 0x87 : x));
    assert.equal(c5.closed, false);
    // Only the granted filters are in the session.
    assert.deepEqual(
      [...b.sessions.get("c1")!.subscriptions.keys()].sort(),
      ["$SYS/broker/time", "$share/g/a/x", "a/b/+", "devices/c1/t"],
    );
  });

  test("%u: the username fills the placeholder", async () => {
    const b = newBroker({ hooks: [lists(rights), topicAuthorization()] });
    const c = await connect(b, { clientId: "c1", username: "u1", password: text("x") });
    assert.deepEqual(await subscribeCodes(c, ["users/u1/x", "users/u2/x"]), [1, 0x80]);
  });

  test("a wildcard in the client id does not widen %c", async () => {
    const b = newBroker({
      hooks: [lists({ "+": { sub: ["devices/%c/#"], pub: [] } }), topicAuthorization()],
    });
    const c = await connect(b, { clientId: "+" });
    assert.deepEqual(await subscribeCodes(c, ["devices/+/#", "devices/x/y"]), [0x80, 0x80]);
  });

  test("PUBLISH: a refused message is dropped, 5.0 gets 0x87, the connection stays", async () => {
    const b = newBroker({ hooks: [lists(rights), topicAuthorization()] });
    const s = await connect(b, { clientId: "watch" }); // no lists: may subscribe to nothing
    assert.deepEqual(await subscribeCodes(s, ["a/x"]), [0x80]);
    const watcher = newBrokerWatcher(b);
    const p4 = await connect(b, { clientId: "c1" });
    p4.send(pub("b/x", "no", 1, 1));
    assert.equal((await p4.expect(4)).reasonCode ?? 0, 0); // 3.1.1: acknowledged, dropped
    p4.send(pub("a/x", "yes", 1, 2));
    assert.equal((await p4.expect(4)).packetId, 2);
    const p5 = await connect(b, { clientId: "c1", protocolVersion: 5 });
    p5.send(pub("devices/c1/out", "yes5", 1, 1));
    assert.notEqual((await p5.expect(4)).reasonCode, 0x87);
    p5.send(pub("devices/c2/out", "no5", 1, 2));
    assert.equal((await p5.expect(4)).reasonCode, 0x87);
    p5.send(pub("devices/c2/out", "no5", 2, 3));
    assert.equal((await p5.expect(5)).reasonCode, 0x87);
    assert.equal(p5.closed, false);
    assert.deepEqual(watcher.topics, ["a/x", "devices/c1/out"]);
  });

  test("a client without lists may neither subscribe nor publish", async () => {
    const b = newBroker({ hooks: [topicAuthorization()] });
    const watcher = newBrokerWatcher(b);
    const c = await connect(b, { clientId: "anon", protocolVersion: 5 });
    assert.deepEqual(await subscribeCodes(c, ["a", "#"]), [0x87, 0x87]);
    c.send(pub("a", "x", 1, 1));
    assert.equal((await c.expect(4)).reasonCode, 0x87);
    assert.deepEqual(watcher.topics, []);
  });

  test("a will the client may not publish is not stored", async () => {
    const b = newBroker({
      hooks: [
        lists({ w1: { pub: ["a/#"] }, w2: { pub: ["a/#"] } }),
        topicAuthorization(),
      ],
    });
    const watcher = newBrokerWatcher(b);
    const will = (topic: string): Will => ({ topic, payload: text("gone"), qos: 0, retain: false });
    const w1 = await connect(b, { clientId: "w1", will: will("b/will") });
    const w2 = await connect(b, { clientId: "w2", will: will("a/will") });
    w1.drop();
    w2.drop();
    await w1.expectClosed();
    await w2.expectClosed();
    await watcher.waitFor("a/will");
    assert.deepEqual(watcher.topics, ["a/will"]);
  });
});

/** Records every message the broker accepts for routing (a test-only hook). */
function newBrokerWatcher(b: Broker) {
  const topics: string[] = [];
  const waiters: (() => void)[] = [];
  b.hooks.push({
    onPublished: (topic) => {
      topics.push(topic);
      for (const w of waiters.splice(0)) w();
    },
  });
  return {
    topics,
    async waitFor(topic: string, ms = 2000) {
      const deadline = Date.now() + ms;
      while (!topics.includes(topic)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no message on ${topic}; got ${topics.join(", ")}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => (clearTimeout(t), resolve()));
        });
      }
    },
  };
}

describe("static ACL", () => {
  const acl: AclConfig = {
    enable: true,
    defaultPolicy: "deny",
    rules: [
      { permission: "allow", action: "both", topic: "#", username: "admin" },
      { permission: "deny", action: "subscribe", topic: "secret/#" },
      { permission: "allow", action: "both", topic: "devices/%c/#" },
      { permission: "allow", action: "subscribe", topic: "public/#" },
      { permission: "allow", action: "publish", topic: "%u/out" },
      { permission: "allow", action: "publish", topic: "ops/#", clientId: "ops-1" },
    ],
  };

  test("first match wins; deny rules refuse the filters they cover; default deny", async () => {
    const b = newBroker({ hooks: [staticAcl(acl)] });
    const anon = await connect(b, { clientId: "c1" });
    assert.deepEqual(
      await subscribeCodes(anon, [
        "devices/c1/x", // rule 3
        "devices/c2/x", // default
        "public/+", // rule 4 covers it
        "$share/g/public/a", // its filter is covered by rule 4
        "#", // no rule covers it (deny secret/# only narrows it): default
        "secret/a", // rule 2
        "other", // default
      ]),
      [1, 0x80, 1, 1, 0x80, 0x80, 0x80],
    );
    const admin = await connect(b, { clientId: "a1", username: "admin", password: text("x") });
    // Rule 1 applies first; '#' never reaches $SYS, so that falls to the default.
    assert.deepEqual(await subscribeCodes(admin, ["#", "secret/a", "$SYS/#"]), [1, 1, 0x80]);
  });

  test("PUBLISH: %u, client-id rules, anonymous clients, 5.0 reason code", async () => {
    const b = newBroker({ hooks: [staticAcl(acl)] });
    const watcher = newBrokerWatcher(b);
    const anon = await connect(b, { clientId: "c1", protocolVersion: 5 });
    const bob = await connect(b, { clientId: "b1", username: "bob", password: text("x") });
    const ops = await connect(b, { clientId: "ops-1", protocolVersion: 5 });
    const tries: [PacketClient, string, boolean][] = [
      [anon, "devices/c1/t", true],
      [anon, "undefined/out", false], // %u does not apply without a username
      [anon, "public/x", false], // rule 4 is subscribe-only
      [bob, "bob/out", true],
      [bob, "alice/out", false],
      [ops, "ops/restart", true],
      [anon, "ops/restart", false],
    ];
    let id = 1;
    for (const [c, topic, ok] of tries) {
      c.send(pub(topic, "x", 1, id));
      const ack = await c.expect(4);
      assert.equal(ack.packetId, id++);
      if (c.version === 5) assert.equal(ack.reasonCode === 0x87, !ok, topic);
    }
    assert.deepEqual(watcher.topics, tries.filter((t) => t[2]).map((t) => t[1]));
  });

  test("default allow: only the deny rules bite", async () => {
    const b = newBroker({
      hooks: [staticAcl({
        enable: true,
        defaultPolicy: "allow",
        rules: [{ permission: "deny", action: "both", topic: "secret/#" }],
      })],
    });
    const watcher = newBrokerWatcher(b);
    const c = await connect(b, { clientId: "c" });
    // Broader filters are accepted; the filters the deny rule covers are refused.
    assert.deepEqual(
      await subscribeCodes(c, ["a/#", "#", "+/x", "secret", "secret/+/y"]),
      [1, 1, 1, 0x80, 0x80],
    );
    const p = await connect(b, { clientId: "p" });
    p.send(pub("secret/x", "no", 0));
    p.send(pub("a/b", "yes", 1, 1));
    await p.expect(4);
    // The denied topic is filtered out where it would be delivered (to # and +/x).
    assert.equal((await c.expect(3)).topic, "a/b");
    await c.expectNothing(50);
    assert.deepEqual(watcher.topics, ["a/b"]);
    assert.equal(b.stats.dropped.notAuthorized, 0); // secret/x was refused at publish
    c.send(pub("x/x", "mine", 0));
    assert.equal((await c.expect(3)).topic, "x/x");
  });
});

describe("configured through the app (MQTT.js)", () => {
  let broker: TestBroker | undefined;
  const clients = new Clients(() => broker!.url);
  afterEach(async () => {
    await clients.closeAll();
    await broker?.stop();
    broker = undefined;
  });
  after(async () => {
    await clients.closeAll();
  });

  test("acl rules from the config: SUBACK 0x80, 5.0 PUBACK 0x87", TIMEOUT, async () => {
    broker = await startBroker({
      acl: {
        enable: true,
        defaultPolicy: "deny",
        rules: [{ permission: "allow", action: "both", topic: "devices/%c/#" }],
      },
    });
    if (broker.external) return;
    const id = `dev-${uid()}`;
    const c = await clients.connect({ protocolVersion: 5, clientId: id });
    const grants = await subackCodes(c.client, [`devices/${id}/in`, "devices/other/in"]);
    assert.deepEqual(grants, [1, 0x87]);
    await publish(c.client, `devices/${id}/in`, "mine", { qos: 1 });
    await c.inbox.payload("mine");
    const err = await withTimeout(
      c.client.publishAsync("devices/other/in", "theirs", { qos: 1 }).then(
        () => undefined,
        (e) => e,
      ),
      "PUBACK for a denied publish",
    );
    assert.equal((err as { code?: number } | undefined)?.code, 0x87);
    assert.equal(c.client.connected, true);
  });

  test("enable-topic-sub-pub-secure without topic lists refuses everything", TIMEOUT, async () => {
    broker = await startBroker({ enableTopicSubPubSecure: true });
    if (broker.external) return;
    const c = await clients.connect({ protocolVersion: 4, clientId: `s-${uid()}` });
    assert.deepEqual(await subackCodes(c.client, ["a/b"]), [0x80]);
  });
});

describe("placeholders cannot reach shared or system topics", () => {
  test("a client id or user name starting with $ does not expand", () => {
    assert.equal(expand("%c/#", { clientId: "$share" }), undefined);
    assert.equal(expand("%u/#", { clientId: "c", username: "$SYS" }), undefined);
    assert.equal(expand("%c/#", { clientId: "dev1" }), "dev1/#");
  });

  test("a deny rule still applies when its placeholder cannot expand", () => {
    const acl = staticAcl({
      enable: true,
      defaultPolicy: "allow",
      rules: [{ permission: "deny", action: "publish", topic: "devices/%c/config" }],
    });
    const client = { clientId: "a/b", remoteAddr: "x", protocolVersion: 5 as const };
    assert.equal(acl.authorizePublish!(client, "devices/evil/config", 0, false), false);
    assert.equal(acl.authorizePublish!(client, "devices/evil/data", 0, false), true);
  });
});

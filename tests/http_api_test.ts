/**
 * The admin API (/api/v1): the Bearer token, listing and paging clients, one
 * client's details, kicking (5.0: DISCONNECT 0x98), subscriptions, retained
 * messages, and publishing through the broker's LocalClient.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { publish, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { TOKEN, useOpsApp } from "./helpers/ops.ts";

const TIMEOUT = { timeout: 30_000 };
const { clients, start } = useOpsApp();

describe("admin API", () => {
  test("401 without the token or with a wrong one; 200 with it", TIMEOUT, async () => {
    const a = await start();
    let r = await fetch(`${a.base}/api/v1/clients`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
    await r.body?.cancel();
    for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, TOKEN, "Bearer "]) {
      r = await fetch(`${a.base}/api/v1/clients`, { headers: { authorization: auth } });
      assert.equal(r.status, 401, auth);
      await r.body?.cancel();
    }
    r = await a.api("/api/v1/clients");
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { total: 0, page: 1, limit: 100, data: [] });
    // /health and /metrics need no token.
    assert.equal((await fetch(`${a.base}/health`)).status, 200);
  });

  test("lists clients by id prefix and user name, paged; shows one client", TIMEOUT, async () => {
    const a = await start();
    const tag = uid();
    for (let i = 0; i < 3; i++) {
      await clients.connect({ clientId: `${tag}-a${i}`, username: "ann", keepalive: 30 });
    }
    const v5 = await clients.connect({
      clientId: `${tag}-b`,
      username: "bob",
      protocolVersion: 5,
      keepalive: 20,
    });
    await subscribe(v5.client, ["x/+", "y/#"], { qos: 1 });
    await clients.connect({ clientId: `other-${tag}` });

    let body = await (await a.api(`/api/v1/clients?prefix=${tag}-`)).json();
    assert.equal(body.total, 4);
    assert.deepEqual(body.data.map((c: { clientId: string }) => c.clientId), [
      `${tag}-a0`,
      `${tag}-a1`,
      `${tag}-a2`,
      `${tag}-b`,
    ]);
    body = await (await a.api(`/api/v1/clients?prefix=${tag}-&limit=2&page=2`)).json();
    assert.deepEqual(body.data.map((c: { clientId: string }) => c.clientId), [
      `${tag}-a2`,
      `${tag}-b`,
    ]);
    body = await (await a.api(`/api/v1/clients?username=bob`)).json();
    assert.deepEqual(body.data.map((c: { clientId: string }) => c.clientId), [`${tag}-b`]);

    const one = await (await a.api(`/api/v1/clients/${encodeURIComponent(`${tag}-b`)}`)).json();
    assert.equal(one.clientId, `${tag}-b`);
    assert.equal(one.connected, true);
    assert.equal(one.username, "bob");
    assert.equal(one.protocolVersion, 5);
    assert.equal(one.keepAlive, 20);
    assert.match(one.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(one.inflight, 0);
    assert.equal(one.queued, 0);
    assert.deepEqual(one.subscriptions, [{ filter: "x/+", qos: 1 }, { filter: "y/#", qos: 1 }]);
    assert.equal((await a.api("/api/v1/clients/nobody")).status, 404);
    assert.equal((await a.api("/api/v1/clients/bad%E0%A4%A")).status, 400);

    const subs = await (await a.api(`/api/v1/subscriptions?clientid=${tag}-b`)).json();
    assert.equal(subs.total, 2);
    assert.deepEqual(subs.data[0], { clientId: `${tag}-b`, filter: "x/+", qos: 1 });
  });

  for (const version of [4, 5] as const) {
    test(`kick a ${version === 5 ? "5.0" : "3.1.1"} client`, TIMEOUT, async () => {
      const a = await start();
      const id = uid();
      const c = await clients.connect({ clientId: id, protocolVersion: version });
      const r = await a.api(`/api/v1/clients/${id}`, { method: "DELETE" });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { kicked: id, connected: true });
      await withTimeout(c.closed, "the kicked client's connection closes");
      if (version === 5) {
        assert.equal(c.disconnects.length, 1);
        assert.equal(c.disconnects[0].reasonCode, 0x98); // Administrative action
      }
      const after = await (await a.api(`/api/v1/clients?prefix=${id}`)).json();
      assert.equal(after.total, 0);
      assert.equal((await a.api(`/api/v1/clients/${id}`, { method: "DELETE" })).status, 404);
    });
  }

  test("retained messages: list, delete; publish through the API", TIMEOUT, async () => {
    const a = await start();
    const t = `r/${uid()}`;
    const pub = await clients.connect({ clientId: uid() });
    await publish(pub.client, `${t}/one`, "first", { qos: 1, retain: true });
    // QoS 1: acknowledged means the broker has kept them before we ask the API.
    await publish(pub.client, `${t}/two`, "second", { qos: 1, retain: true });
    await publish(pub.client, `${t}/bin`, "\u00ff", { qos: 1, retain: true });

    let list = await (await a.api(`/api/v1/retained?filter=${encodeURIComponent(`${t}/#`)}`))
      .json();
    assert.equal(list.total, 3);
    assert.deepEqual(list.data[1], {
      topic: `${t}/one`,
      qos: 1,
      payload: "first",
      encoding: "utf8",
    });
    const del = await a.api(`/api/v1/retained/${encodeURIComponent(`${t}/one`)}`, {
      method: "DELETE",
    });
    assert.equal(del.status, 200);
    list = await (await a.api(`/api/v1/retained?filter=${encodeURIComponent(`${t}/#`)}`)).json();
    assert.deepEqual(list.data.map((m: { topic: string }) => m.topic), [`${t}/bin`, `${t}/two`]);
    assert.equal((await a.api("/api/v1/retained?filter=a/%23/b")).status, 400);

    const sub = await clients.connect({ clientId: uid() });
    await subscribe(sub.client, `${t}/cmd`, { qos: 1 });
    const r = await a.api("/api/v1/publish", {
      method: "POST",
      body: JSON.stringify({
        topic: `${t}/cmd`,
        payload: btoa("hello"),
        encoding: "base64",
        qos: 1,
      }),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { topic: `${t}/cmd`, delivered: 1 });
    const got = await sub.inbox.payload("hello", `${t}/cmd`);
    assert.equal(got.qos, 1);
    const bad = await a.api("/api/v1/publish", {
      method: "POST",
      body: JSON.stringify({ topic: "a/+", payload: "x" }),
    });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /topic "a\/\+"/);
  });
});

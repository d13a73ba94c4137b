/**
 * Redis starts refusing a cluster's password (it was changed, and the
 * connections made since): each node logs the refused frame connection once,
 * not at every retry, and keeps serving its own clients; once the password is
 * the node's again, frames cross again and that is logged.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { crossAndLocal, untilRouted, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { publish, sleep, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip, { redis: { password: "p1" } });

const refused = /cluster: cannot publish frames on Redis \(Redis answered WRONGPASS/g;

describe("cluster: Redis refuses the password", { skip }, () => {
  test("logged once, local clients served, frames cross again once let in", {
    timeout: 120_000,
  }, async () => {
    const t = `ra/${uid()}`;
    const { remote, local, pub } = await crossAndLocal(onA, onB, t);

    const admin = createClient({ url: nodes.redis!.url });
    await admin.connect();
    try {
      await admin.sendCommand(["CONFIG", "SET", "requirepass", "p2"]);
      await admin.sendCommand(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
      await admin.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]);
      // Frames keep being made (the route is cached) and their connection keeps retrying.
      for (let i = 0; i < 30; i++) {
        await publish(pub.client, t, `lost-${i}`, { qos: 0 });
        await sleep(100);
      }
      await publish(pub.client, `${t}/local`, "local", { qos: 0 });
      await local.inbox.payload("local", `${t}/local`, 10_000);
      assert.equal(nodes.a!.proc.output.match(refused)?.length, 1, nodes.a!.proc.output);

      await admin.sendCommand(["CONFIG", "SET", "requirepass", "p1"]);
      remote.inbox.messages.length = 0;
      await untilRouted(pub.client, remote.inbox, t, 60_000);
      // A frame crosses before the node has read Redis's answer to it and said so.
      const again = /cluster: publishing frames on Redis again/;
      for (let i = 0; i < 100 && !again.test(nodes.a!.proc.output); i++) await sleep(100);
      assert.match(nodes.a!.proc.output, again);
      assert.equal(nodes.a!.proc.output.match(refused)?.length, 1);
    } finally {
      await admin.close();
    }
  });
});

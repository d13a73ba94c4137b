/**
 * A claim that a newer one overtook while it waited for the previous holder's answer does not
 * become the client's writer (the store's fence keeps the newer one); nor may its node then load
 * and serve the session, with `session present`, while another node holds it: the client got
 * messages there that the other node delivered again (QoS 2 twice, in a stress run where the
 * claiming node stalled and was declared dead meanwhile). Its CONNECT is refused instead
 * (0x88 Server unavailable): the client tries again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient } from "./helpers/packet_client.ts";
import { offlineSession, withTwoNodes } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();

test("a claim overtaken before its commit refuses the CONNECT instead of serving the session", {
  skip: redis.skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, "superseded:cluster:", async (a, b) => {
    await offlineSession(a, "sc", "s/#");
    // While B waits for A's answer, a newer claim (node 003's) becomes the writer.
    const commit = b.bus.commit.bind(b.bus);
    b.bus.commit = async (clientId, epoch) => {
      const newer = `${epoch + 1000} 003`;
      await redis.admin().client.sendCommand(["HSET", b.bus.writers, clientId, newer]);
      return commit(clientId, epoch);
    };
    const c = PacketClient.open(b.broker, { clientId: "sc", clean: false, protocolVersion: 5 });
    const connack = await c.expect(2, 10_000);
    assert.equal(connack.reasonCode, 0x88, "refused: another claim writes the session now");
    assert.equal(b.broker.sessions.get("sc")?.connection, undefined, "not served on B");
  }));

// MQTT 5.0 enhanced authentication (4.12): the AUTH exchange around CONNECT, and re-authentication.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { EnhancedAuthenticator } from "../src/broker/hooks.ts";

afterEach(closeAll);

/** A toy method: the server sends "nonce", the client must answer "nonce:secret". */
const toy: EnhancedAuthenticator = {
  method: "TOY",
  start: () => {
    let sent = false;
    return {
      step(data) {
        if (!sent) {
          sent = true;
          return { kind: "continue", data: text("nonce") };
        }
        return data && str(data) === "nonce:secret"
          ? { kind: "success", data: text("welcome") }
          : { kind: "fail", reasonCode: 0x86 };
      },
    };
  },
};

function connectWith(c: PacketClient, method: string) {
  c.send({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "ea",
    properties: { authenticationMethod: method, authenticationData: text("hello") },
  });
}

describe("enhanced authentication", () => {
  test("continue then success: CONNACK carries the method and final data", async () => {
    const b = newBroker({ hooks: [{ authenticators: [toy] }] });
    const c = new PacketClient(b, 5);
    connectWith(c, "TOY");
    const challenge = await c.expect(15);
    assert.equal(challenge.reasonCode, 0x18);
    assert.equal(str(challenge.properties!.authenticationData!), "nonce");
    c.send({
      type: 15,
      reasonCode: 0x18,
      properties: { authenticationMethod: "TOY", authenticationData: text("nonce:secret") },
    });
    const ack = await c.expect(2);
    assert.equal(ack.reasonCode, 0);
    assert.equal(ack.properties?.authenticationMethod, "TOY");
    assert.equal(str(ack.properties!.authenticationData!), "welcome");

    // Re-authentication on the live connection ends with AUTH 0x00.
    c.send({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: "TOY" } });
    assert.equal((await c.expect(15)).reasonCode, 0x18);
    c.send({
      type: 15,
      reasonCode: 0x18,
      properties: { authenticationMethod: "TOY", authenticationData: text("nonce:secret") },
    });
    assert.equal((await c.expect(15)).reasonCode, 0x00);
  });

  test("a wrong answer gets CONNACK 0x86", async () => {
    const b = newBroker({ hooks: [{ authenticators: [toy] }] });
    const c = new PacketClient(b, 5);
    connectWith(c, "TOY");
    await c.expect(15);
    c.send({
      type: 15,
      reasonCode: 0x18,
      properties: { authenticationMethod: "TOY", authenticationData: text("nonce:guess") },
    });
    assert.equal((await c.expect(2)).reasonCode, 0x86);
    await c.expectClosed();
  });

  test("an unknown method gets CONNACK 0x8C", async () => {
    const b = newBroker({ hooks: [{ authenticators: [toy] }] });
    const c = new PacketClient(b, 5);
    connectWith(c, "NOPE");
    assert.equal((await c.expect(2)).reasonCode, 0x8c);
    await c.expectClosed();
  });

  test("AUTH on a connection that did not use enhanced auth is a protocol error", async () => {
    const b = newBroker({ hooks: [{ authenticators: [toy] }] });
    const { client } = await PacketClient.connect(b, { clientId: "plain", protocolVersion: 5 });
    client.send({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: "TOY" } });
    assert.equal((await client.expect(14)).reasonCode, 0x82);
    await client.expectClosed();
  });

  test("a failed re-authentication disconnects", async () => {
    const b = newBroker({ hooks: [{ authenticators: [toy] }] });
    const c = new PacketClient(b, 5);
    connectWith(c, "TOY");
    await c.expect(15);
    c.send({
      type: 15,
      reasonCode: 0x18,
      properties: { authenticationMethod: "TOY", authenticationData: text("nonce:secret") },
    });
    await c.expect(2);
    c.send({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: "TOY" } });
    await c.expect(15);
    c.send({
      type: 15,
      reasonCode: 0x18,
      properties: { authenticationMethod: "TOY", authenticationData: text("bad") },
    });
    assert.equal((await c.expect(14)).reasonCode, 0x87); // 0x86 is not a DISCONNECT code
    await c.expectClosed();
  });
});

test("a successful re-authentication updates the client's topic rights", async () => {
  let round = 0;
  const rights: EnhancedAuthenticator = {
    method: "RIGHTS",
    start: () => ({
      step: () => {
        round++;
        return {
          kind: "success",
          decision: { ok: true, authorizedPub: [round === 1 ? "first/#" : "second/#"] },
        };
      },
    }),
  };
  const b = newBroker({ hooks: [{ authenticators: [rights] }] });
  const c = new PacketClient(b, 5);
  c.send({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "r",
    properties: { authenticationMethod: "RIGHTS" },
  });
  await c.expect(2);
  const client = () => [...b.connections].find((x) => x.clientId === "r")!.client!;
  assert.deepEqual(client().authorizedPub, ["first/#"]);
  c.send({ type: 15, reasonCode: 0x19, properties: { authenticationMethod: "RIGHTS" } });
  assert.equal((await c.expect(15)).reasonCode, 0x00);
  assert.deepEqual(client().authorizedPub, ["second/#"]);
});

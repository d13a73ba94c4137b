// CONNECT / CONNACK rules of MQTT 3.1.1 chapter 3.1-3.2, at the packet level.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";

afterEach(closeAll);

describe("CONNECT", () => {
  test("accepts 3.1.1 and answers CONNACK 0 without session present", async () => {
    const b = newBroker();
    const { connack } = await PacketClient.connect(b, { clientId: "a" });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    assert.equal(b.connectedCount, 1);
  });

  test("accepts MQTT 3.1 (MQIsdp, level 3)", async () => {
    const b = newBroker();
    const { connack } = await PacketClient.connect(b, { protocolVersion: 3, clientId: "old" });
    assert.equal(connack.reasonCode, 0);
  });

  test("unsupported protocol level gets CONNACK 0x01 and close [MQTT-3.1.2-2]", async () => {
    const b = newBroker();
    const c = new PacketClient(b, 4);
    // CONNECT "MQTT" level 6, clean, keepalive 0, client id "x".
    c.sendRaw(new Uint8Array([0x10, 13, 0, 4, 77, 81, 84, 84, 6, 2, 0, 0, 0, 1, 120]));
    const ack = await c.expect(2);
    assert.equal(ack.reasonCode, 0x01);
    await c.expectClosed();
  });

  test("a packet before CONNECT closes the connection [MQTT-3.1.0-1]", async () => {
    const b = newBroker();
    const c = new PacketClient(b, 4);
    c.send({ type: 12 });
    await c.expectClosed();
    assert.equal(c.pending().length, 0);
  });

  test("a second CONNECT closes the connection [MQTT-3.1.0-2]", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "twice" });
    client.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "twice",
    });
    await client.expectClosed();
  });

  test("empty client id with clean session is assigned one [MQTT-3.1.3-6]", async () => {
    const b = newBroker();
    const { client, connack } = await PacketClient.connect(b, { clientId: "", clean: true });
    assert.equal(connack.reasonCode, 0);
    client.send({ type: 12 });
    await client.expect(13);
  });

  test("empty client id without clean session is refused with 0x02 [MQTT-3.1.3-8]", async () => {
    const b = newBroker();
    const c = new PacketClient(b, 4);
    c.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: false,
      keepAlive: 0,
      clientId: "",
    });
    const ack = await c.expect(2);
    assert.equal(ack.reasonCode, 0x02);
    await c.expectClosed();
  });

  test("5.0 empty client id gets an Assigned Client Identifier", async () => {
    const b = newBroker();
    const { connack } = await PacketClient.connect(b, { protocolVersion: 5, clientId: "" });
    assert.equal(connack.reasonCode, 0);
    const id = connack.properties?.assignedClientIdentifier;
    assert.ok(id && id.length > 0);
  });

  test("a connected client id is taken over: the old connection is closed [MQTT-3.1.4-2]", async () => {
    const b = newBroker();
    const first = await PacketClient.connect(b, { clientId: "dup" });
    const second = await PacketClient.connect(b, { clientId: "dup" });
    await first.client.expectClosed();
    second.client.send({ type: 12 });
    await second.client.expect(13);
    assert.equal(b.connectedCount, 1);
  });

  test("5.0 takeover sends DISCONNECT 0x8E to the old connection", async () => {
    const b = newBroker();
    const first = await PacketClient.connect(b, { clientId: "dup5", protocolVersion: 5 });
    await PacketClient.connect(b, { clientId: "dup5", protocolVersion: 5 });
    const d = await first.client.expect(14);
    assert.equal(d.reasonCode, 0x8e);
    await first.client.expectClosed();
  });

  test("keep-alive: silent for 1.5 x the interval closes the connection [MQTT-3.1.2-24]", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "ka", keepAlive: 1 });
    await client.expectClosed(3000);
  });

  test("keep-alive: PINGREQ keeps the connection open", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "ka2", keepAlive: 1 });
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500));
      client.send({ type: 12 });
      await client.expect(13);
    }
    assert.equal(client.closed, false);
  });

  test("no CONNECT within the connect timeout closes the socket", async () => {
    const b = newBroker({ connectTimeout: 100 });
    const c = new PacketClient(b, 4);
    await c.expectClosed(1000);
  });

  test("malformed packet closes only that connection", async () => {
    const b = newBroker();
    const good = await PacketClient.connect(b, { clientId: "good" });
    const bad = await PacketClient.connect(b, { clientId: "bad" });
    bad.client.sendRaw(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])); // 5-byte length
    await bad.client.expectClosed();
    good.client.send({ type: 12 });
    await good.client.expect(13);
  });

  test("5.0 malformed packet gets DISCONNECT 0x81 first", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "bad5", protocolVersion: 5 });
    client.sendRaw(new Uint8Array([0x62, 0x02, 0x00, 0x00])); // PUBREL with packet id 0
    const d = await client.expect(14);
    assert.equal(d.reasonCode, 0x81);
    await client.expectClosed();
  });

  test("a packet over the maximum packet size closes the connection (5.0: 0x95)", async () => {
    const b = newBroker({ maximumPacketSize: 100 });
    const { client } = await PacketClient.connect(b, { clientId: "big", protocolVersion: 5 });
    client.send({
      type: 3,
      topic: "t",
      payload: new Uint8Array(200),
      qos: 0,
      retain: false,
      dup: false,
    });
    const d = await client.expect(14);
    assert.equal(d.reasonCode, 0x95);
    await client.expectClosed();
  });

  test("PINGREQ gets PINGRESP [MQTT-3.12.4-1]", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "ping" });
    client.send({ type: 12 });
    await client.expect(13);
    assert.ok(text("x"));
  });
});

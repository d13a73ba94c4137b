/**
 * Interop: a raw `node:net` socket against the broker for what MQTT.js will not
 * send (refused empty client ids, keep-alive timing). Run against another broker
 * with MQTTX_TEST_EXTERNAL=host:port.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { connectPacket, PINGREQ, RawSocket, sleep, uid, withTimeout } from "./helpers/mqttjs.ts";

/** Above every bounded wait here, so a broker that never answers fails with our message. */
const TIMEOUT = { timeout: 20_000 };

let broker: TestBroker;
const raws: RawSocket[] = [];

before(async () => {
  broker = await startBroker();
});

afterEach(() => {
  for (const r of raws.splice(0)) r.destroy();
});

after(async () => {
  await broker?.stop();
});

describe("raw socket", () => {
  test(
    "3.1.1: empty client id with clean=false is refused with return code 2",
    TIMEOUT,
    async () => {
      const s = await RawSocket.open(broker.host, broker.port, raws);
      s.write(connectPacket({ clientId: "", clean: false, keepAlive: 30 }));
      const bytes = await s.bytes(4);
      assert.deepEqual([...bytes.slice(0, 4)], [0x20, 0x02, 0x00, 0x02], "CONNACK rc 2");
      await withTimeout(s.closed, "broker closes the refused connection");
    },
  );

  test("keep-alive 1 s: a silent client is disconnected after ~1.5 s", TIMEOUT, async () => {
    const s = await RawSocket.open(broker.host, broker.port, raws);
    s.write(connectPacket({ clientId: `raw-${uid()}`, clean: true, keepAlive: 1 }));
    const bytes = await s.bytes(4);
    assert.deepEqual([...bytes.slice(0, 4)], [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
    const start = Date.now();
    // mosquitto 2.0.11 checks keep-alives coarsely (closes after ~6 s); mqttx gets 4 s.
    await withTimeout(
      s.closed,
      "broker closes the silent connection",
      broker.external ? 10_000 : 4000,
    );
    // Not a performance bound: closing well before 1.5 x keep-alive would be a bug.
    assert.ok(Date.now() - start >= 900, `closed too early (${Date.now() - start} ms)`);
  });

  test("keep-alive 1 s: a client sending PINGREQ is kept and gets PINGRESP", TIMEOUT, async () => {
    const s = await RawSocket.open(broker.host, broker.port, raws);
    s.write(connectPacket({ clientId: `raw-${uid()}`, clean: true, keepAlive: 1 }));
    await s.bytes(4);
    for (let i = 1; i <= 6; i++) {
      await sleep(400);
      assert.equal(s.isClosed, false, `still open after ${i * 400} ms of pings`);
      s.write(PINGREQ);
      await s.bytes(4 + 2 * i);
    }
    const pongs = s.received.slice(4);
    assert.deepEqual([...pongs], Array.from({ length: 6 }, () => [0xd0, 0x00]).flat());
  });
});

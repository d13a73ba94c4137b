/**
 * The library API (src/mod.ts) in-process: a broker from a config object,
 * hooks added after start, publish and subscribe without a network client,
 * an attached stream pair, close.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createBroker } from "../src/mod.ts";
import { testRuntime } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";
import { encode } from "../src/mqtt/encoder.ts";

test("createBroker: publish, subscribe, addHooks, attachStreams, close", {
  timeout: 30_000,
}, async () => {
  const mqtt = await createBroker({
    runtime: await testRuntime(),
    config: { host: "127.0.0.1", socket: { port: 0 } },
    quiet: true,
  });
  const clients = new Clients(() => `mqtt://127.0.0.1:${mqtt.app.ports.socket}`);
  try {
    // In-process publish reaches a network subscriber.
    const sub = await clients.connect({ clientId: uid() });
    await subscribe(sub.client, "cmd/#", { qos: 1 });
    assert.equal(await mqtt.publish("cmd/reboot", "now", { qos: 1 }), 1);
    assert.equal((await sub.inbox.payload("now", "cmd/reboot")).qos, 1);

    // In-process subscriber: retained first, then live messages; a hook refuses a topic.
    await mqtt.publish("state/a", "kept", { retain: true });
    const seen: string[] = [];
    const unsubscribe = mqtt.subscribe("state/+", (m) => {
      seen.push(`${m.topic}=${new TextDecoder().decode(m.payload)}`);
    });
    const removeHook = mqtt.addHooks({ authorizePublish: (_c, topic) => topic !== "state/no" });
    const pub = await clients.connect({ clientId: uid(), protocolVersion: 5 });
    await publish(pub.client, "state/no", "refused", { qos: 1 }).catch(() => {});
    await publish(pub.client, "state/b", "live", { qos: 1 });
    assert.deepEqual(seen, ["state/a=kept", "state/b=live"]);
    removeHook();
    await publish(pub.client, "state/no", "allowed now", { qos: 1 });
    unsubscribe();
    await publish(pub.client, "state/c", "unseen", { qos: 1 });
    assert.deepEqual(seen, ["state/a=kept", "state/b=live", "state/no=allowed now"]);

    // A stream pair: CONNECT in, CONNACK out.
    const input = new TransformStream<Uint8Array, Uint8Array>();
    const output = new TransformStream<Uint8Array, Uint8Array>();
    mqtt.attachStreams(input.readable, output.writable, "pipe:1");
    const w = input.writable.getWriter();
    await w.write(encode(
      {
        type: 1,
        protocolName: "MQTT",
        protocolVersion: 4,
        clean: true,
        keepAlive: 0,
        clientId: "piped",
      } as Parameters<typeof encode>[0],
      4,
    ));
    const { value } = await output.readable.getReader().read();
    assert.deepEqual([...value!], [0x20, 0x02, 0x00, 0x00]); // CONNACK accepted
    assert.equal(mqtt.broker.sessions.get("piped")?.connection?.remoteAddr, "pipe:1");
  } finally {
    await clients.closeAll();
    await mqtt.close();
  }
});

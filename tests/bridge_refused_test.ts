/**
 * The upstream refuses a message (MQTT 5 PUBACK/PUBREC reason code >= 0x80,
 * here a real Mosquitto whose ACL denies the topic): the bridge counts it as
 * refused (status, log), removes it from its queue and goes on sending. Before,
 * each refusal kept a slot of the send window, and after Mosquitto's receive
 * maximum (20) of them the bridge sent nothing more.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";
import { bridge, type BridgeApp, startBridgeApp, statusWatcher } from "./helpers/bridge_app.ts";
import type { QoS } from "../src/mqtt/packet.ts";

const have = mosquittoAvailable();
/** node:test's timeout, and our own deadline under it (a test must end, also on Deno). */
const T = { timeout: 90_000, skip: !have && !mustRun() ? "mosquitto not on PATH" : false };
const DEADLINE_MS = 60_000;
/** More than Mosquitto's receive maximum (20): enough refusals to fill the old window. */
const REFUSED = 50;

let upstream: Upstream | undefined;
let app: BridgeApp | undefined;
const local = new Clients(() => app!.url);
const remote = new Clients(() => upstream!.url);

afterEach(async () => {
  await local.closeAll();
  await remote.closeAll();
  await app?.app.stop();
  app = undefined;
  await upstream?.remove();
  upstream = undefined;
});

describe("bridge: messages the upstream refuses", () => {
  for (const qos of [1, 2] as QoS[]) {
    test(
      `QoS ${qos}: ${REFUSED} refused, counted and removed; sending goes on`,
      T,
      () =>
        withTimeout(
          (async () => {
            // Anonymous clients may write up/ok/# and read everything: up/denied is refused.
            upstream = await startUpstream({
              acl: "topic readwrite up/ok/#\ntopic read #\n",
              maxQueuedMessages: 1000,
            });
            app = await startBridgeApp([
              bridge({
                name: "up",
                url: upstream.url,
                topics: [{ filter: "#", remotePrefix: "up/", qos }],
              }),
            ]);
            const status = await statusWatcher(local, "up");
            await status.until((s) => s.connected, "connected");
            const sub = await remote.connect({ clientId: `sub-${uid()}` });
            await subscribe(sub.client, "up/#", { qos: 2 });
            const pub = await local.connect();
            for (let i = 0; i < REFUSED; i++) {
              await publish(pub.client, "denied", String(i), { qos });
            }
            await publish(pub.client, "ok/after", "after", { qos });
            await sub.inbox.payload("after", "up/ok/after", 30_000);
            const s = await status.until(
              (s) => s.refused === REFUSED && s.queued === 0 && s.sent === 1,
              `${REFUSED} refused, 1 sent, queue empty`,
              30_000,
            );
            assert.equal(s.dropped, 0, "dropped counts a full queue only");
            assert.ok(sub.inbox.messages.every((m) => m.topic === "up/ok/after"));
            // Logged with the reason, rate-limited: not one line per refused message.
            const lines = app.log.filter((l) => /refused/.test(l));
            assert.ok(lines.length >= 1 && lines.length < 5, lines.join("\n"));
            assert.match(lines[0], /0x87|Not authorized/);
            assert.match(lines[0], /up\/denied/);
          })(),
          `QoS ${qos} refusals`,
          DEADLINE_MS,
        ),
    );
  }
});

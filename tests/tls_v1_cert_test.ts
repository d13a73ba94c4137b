/**
 * A client certificate without X.509 v3 extensions (common in tutorials:
 * `openssl x509 -req` without `-extfile`) is accepted with client-auth
 * REQUIRE and OPTIONAL on both runtimes, as Mosquitto does; a refused
 * certificate is logged with a reason.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IClientOptions } from "mqtt";
import { mustRun } from "./helpers/harness.ts";
import {
  makePki,
  opensslAvailable,
  startTestApp,
  type TestApp,
  type TestPki,
} from "./helpers/certs.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";
import { sleep } from "./helpers/raw_socket.ts";
import type { ClientInfo } from "../src/broker/hooks.ts";

const T = { timeout: 30_000 };
const haveOpenssl = opensslAvailable();
const skip = !haveOpenssl && !mustRun() ? "openssl not on PATH" : false;

let pki: TestPki;
const apps: TestApp[] = [];
const clients = new Clients(() => "unused");

before(() => {
  if (haveOpenssl) pki = makePki();
});
afterEach(async () => {
  await clients.closeAll();
  for (const a of apps.splice(0)) await a.stop();
});
after(() => pki?.remove());

async function start(clientAuth: string): Promise<TestApp> {
  const a = await startTestApp({
    ssl: {
      enable: true,
      certFile: pki.server.cert,
      keyFile: pki.server.key,
      caFile: pki.caFile,
      clientAuth: clientAuth as "REQUIRE",
      useCnAsUsername: true,
    },
  });
  apps.push(a);
  return a;
}

function tlsOpts(port: number, pair: { cert: string; key: string }): IClientOptions {
  return {
    protocol: "mqtts",
    host: "127.0.0.1",
    port,
    ca: pki.read(pki.caFile),
    rejectUnauthorized: true,
    clientId: `v1-${uid()}`,
    cert: pki.read(pair.cert),
    key: pki.read(pair.key),
    connectTimeout: 5000,
    reconnectPeriod: 0,
  };
}

describe("client certificates without v3 extensions", { skip }, () => {
  for (const mode of ["REQUIRE", "OPTIONAL"]) {
    test(`${mode}: accepted, its CN is the username`, T, async () => {
      const a = await start(mode);
      const seen: ClientInfo[] = [];
      a.app.broker.hooks.push({ onConnected: (c) => void seen.push(c) });
      const { client, inbox } = await clients.connect(tlsOpts(a.app.ports.socket!, pki.v1Client));
      const topic = `v1/${uid()}`;
      await subscribe(client, topic, { qos: 1 });
      await publish(client, topic, "v1 cert", { qos: 1 });
      await inbox.payload("v1 cert");
      assert.equal(seen[0]?.username, "bob");
      assert.equal(seen[0]?.certificate?.commonName, "bob");
    });
  }

  test(
    "a certificate from a foreign CA is still refused, and the refusal is logged",
    T,
    async () => {
      const a = await start("REQUIRE");
      await assert.rejects(clients.connect(tlsOpts(a.app.ports.socket!, pki.foreignClient)));
      for (let i = 0; i < 100 && !a.log.some((l) => l.includes("closing")); i++) await sleep(20);
      const line = a.log.find((l) => l.includes("closing"));
      assert.ok(line, a.log.join("\n"));
      assert.match(line, /127\.0\.0\.1:\d+/, a.log.join("\n"));
      assert.match(line, /certificate|handshake/i);
    },
  );
});

/**
 * TLS listeners on the runtime that runs this file: mqtts:// with MQTT.js and
 * the mosquitto clients, client certificates (REQUIRE / OPTIONAL, expired and
 * foreign-CA refused, CN as username, identity for hooks), plain and TLS side
 * by side, PKCS#12 key stores, start-up errors, certificate reload.
 * Certificates come from Debian's openssl (tests/helpers/certs.ts).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as tls from "node:tls";
import { copyFileSync } from "node:fs";
import type { IClientOptions } from "mqtt";
import { mustRun } from "./helpers/harness.ts";
import {
  makePki,
  opensslAvailable,
  startTestApp,
  type TestApp,
  type TestPki,
} from "./helpers/certs.ts";
import { Clients, publish, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { mosquittoClientsAvailable, Procs } from "./helpers/mosquitto.ts";
import type { ClientInfo } from "../src/broker/hooks.ts";

const T = { timeout: 30_000 };
const haveOpenssl = opensslAvailable();
const skip = !haveOpenssl && !mustRun() ? "openssl not on PATH" : false;

let pki: TestPki;
const apps: TestApp[] = [];
const clients = new Clients(() => "unused");
const procs = new Procs();

before(() => {
  if (haveOpenssl) pki = makePki();
});
afterEach(async () => {
  await clients.closeAll();
  await procs.killAll();
  for (const a of apps.splice(0)) await a.stop();
});
after(() => pki?.remove());

async function start(
  ssl: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  opts: { certWatchInterval?: number } = {},
): Promise<TestApp> {
  const a = await startTestApp({
    ssl: { enable: true, certFile: pki.server.cert, keyFile: pki.server.key, ...ssl },
    ...extra,
  }, opts);
  apps.push(a);
  return a;
}

/** MQTT.js options for mqtts:// to this port, trusting the test CA. */
function tlsOpts(port: number, o: IClientOptions = {}): IClientOptions {
  return {
    protocol: "mqtts",
    host: "127.0.0.1",
    port,
    ca: pki.read(pki.caFile),
    rejectUnauthorized: true,
    clientId: `tls-${uid()}`,
    ...o,
  };
}

function withCert(pair: { cert: string; key: string }): IClientOptions {
  return { cert: pki.read(pair.cert), key: pki.read(pair.key) };
}

/** Records the ClientInfo of every connected client. */
function recordClients(a: TestApp): ClientInfo[] {
  const seen: ClientInfo[] = [];
  a.app.broker.hooks.push({ onConnected: (c) => void seen.push(c) });
  return seen;
}

/** CN of the certificate the server presents now (raw node:tls client). */
function serverCn(port: number): Promise<string | undefined> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect(
        { host: "127.0.0.1", port, ca: pki.read(pki.caFile), servername: "localhost" },
        () => {
          const cn = s.getPeerCertificate().subject?.CN;
          s.destroy();
          resolve(Array.isArray(cn) ? cn[0] : cn);
        },
      );
      s.once("error", reject);
    }),
    "TLS handshake",
  );
}

describe("TLS listeners", { skip }, () => {
  test("openssl is available (required in CI)", () => {
    assert.ok(haveOpenssl, "openssl must be on PATH");
  });

  test("MQTT.js over mqtts:// subscribes and receives; the log names the listener", T, async () => {
    const a = await start({});
    const port = a.app.ports.socket!;
    assert.equal(a.app.ports.tls, port);
    assert.ok(
      a.log.some((l) => l.includes(`listening on mqtts://127.0.0.1:${port}`)),
      a.log.join("\n"),
    );
    const { client, inbox } = await clients.connect(tlsOpts(port));
    const topic = `tls/${uid()}`;
    await subscribe(client, topic, { qos: 1 });
    await publish(client, topic, "over tls", { qos: 1 });
    assert.equal((await inbox.payload("over tls")).topic, topic);
  });

  test("plain TCP and TLS side by side (1883 + 8883 style)", T, async () => {
    const a = await start({ enable: false }, { listeners: [{ type: "tls", port: 0 }] });
    const { socket, tls: tlsPort } = a.app.ports;
    assert.ok(socket && tlsPort && socket !== tlsPort);
    assert.deepEqual(a.app.ports.listeners.map((l) => l.type), ["tcp", "tls"]);
    const plain = await clients.connect({ host: "127.0.0.1", port: socket, protocol: "mqtt" });
    const secure = await clients.connect(tlsOpts(tlsPort));
    const topic = `side/${uid()}`;
    await subscribe(secure.client, topic);
    await publish(plain.client, topic, "tcp to tls", { qos: 1 });
    await secure.inbox.payload("tcp to tls");
  });

  test("a plain MQTT client on the TLS port gets no CONNACK", T, async () => {
    const a = await start({});
    await assert.rejects(
      clients.connect({ host: "127.0.0.1", port: a.app.ports.tls!, protocol: "mqtt" }),
    );
  });

  describe("client certificates", () => {
    test("REQUIRE: a good certificate is accepted; hooks see its identity", T, async () => {
      const a = await start({ clientAuth: "REQUIRE", caFile: pki.caFile });
      const seen = recordClients(a);
      const { client } = await clients.connect({
        ...tlsOpts(a.app.ports.tls!),
        ...withCert(pki.client),
        username: "from-connect",
      });
      assert.equal(client.connected, true);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].certificate?.commonName, "alice");
      assert.match(seen[0].certificate?.subject ?? "", /CN=alice/);
      assert.match(seen[0].certificate?.fingerprint256 ?? "", /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.equal(seen[0].username, "from-connect"); // use-cn-as-username is off
    });

    test("REQUIRE: no certificate is refused", T, async () => {
      const a = await start({ clientAuth: "REQUIRE", caFile: pki.caFile });
      await assert.rejects(clients.connect(tlsOpts(a.app.ports.tls!)));
    });

    test("the old boolean client-auth: true means REQUIRE", T, async () => {
      const { parseConfig } = await import("../src/config/load.ts");
      const c = parseConfig("mqttx:\n  ssl:\n    client-auth: true\n", "t.yml");
      assert.equal(c.ssl.clientAuth, "REQUIRE");
    });

    test("OPTIONAL: no certificate is accepted, a good one is reported", T, async () => {
      const a = await start({ clientAuth: "OPTIONAL", caFile: pki.caFile });
      const seen = recordClients(a);
      await clients.connect(tlsOpts(a.app.ports.tls!, { clientId: "anon" }));
      await clients.connect({
        ...tlsOpts(a.app.ports.tls!, { clientId: "certified" }),
        ...withCert(pki.client),
      });
      const byId = new Map(seen.map((c) => [c.clientId, c]));
      assert.equal(byId.get("anon")?.certificate, undefined);
      assert.equal(byId.get("certified")?.certificate?.commonName, "alice");
    });

    for (const mode of ["REQUIRE", "OPTIONAL"] as const) {
      test(`${mode}: an expired certificate is refused`, T, async () => {
        const a = await start({ clientAuth: mode, caFile: pki.caFile });
        await assert.rejects(
          clients.connect({ ...tlsOpts(a.app.ports.tls!), ...withCert(pki.expiredClient) }),
        );
      });

      test(`${mode}: a certificate from a foreign CA is refused`, T, async () => {
        const a = await start({ clientAuth: mode, caFile: pki.caFile });
        await assert.rejects(
          clients.connect({ ...tlsOpts(a.app.ports.tls!), ...withCert(pki.foreignClient) }),
        );
      });

      // What `openssl x509 -req` makes without `-extfile`; Deno's rustls alone refuses it.
      test(`${mode}: a certificate without X.509 v3 extensions is accepted`, T, async () => {
        const a = await start({ clientAuth: mode, caFile: pki.caFile, useCnAsUsername: true });
        const seen = recordClients(a);
        const { client, inbox } = await clients.connect({
          ...tlsOpts(a.app.ports.tls!),
          ...withCert(pki.v1Client),
        });
        const topic = `v1/${uid()}`;
        await subscribe(client, topic, { qos: 1 });
        await publish(client, topic, "v1 cert", { qos: 1 });
        await inbox.payload("v1 cert");
        assert.equal(seen[0]?.username, "bob");
      });
    }

    test("a refused certificate is logged with the address and why", T, async () => {
      const a = await start({ clientAuth: "REQUIRE", caFile: pki.caFile });
      await assert.rejects(
        clients.connect({ ...tlsOpts(a.app.ports.tls!), ...withCert(pki.foreignClient) }),
      );
      for (let i = 0; i < 100 && !a.log.some((l) => l.includes("closing")); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const line = a.log.find((l) => l.includes("closing")) ?? "";
      assert.match(line, /closing 127\.0\.0\.1:\d+: .*(certificate|handshake)/i, a.log.join("\n"));
    });

    test("use-cn-as-username: the subject CN is the username hooks see", T, async () => {
      const a = await start({ clientAuth: "REQUIRE", caFile: pki.caFile, useCnAsUsername: true });
      const seen = recordClients(a);
      await clients.connect({
        ...tlsOpts(a.app.ports.tls!),
        ...withCert(pki.client),
        username: "someone-else",
      });
      assert.equal(seen[0]?.username, "alice");
    });
  });

  describe("mosquitto clients", {
    skip: !mosquittoClientsAvailable() && !mustRun() ? "mosquitto clients not on PATH" : false,
  }, () => {
    test("mosquitto_pub with --cafile/--cert/--key publishes over mTLS", T, async () => {
      const a = await start({ clientAuth: "REQUIRE", caFile: pki.caFile });
      const { client, inbox } = await clients.connect(
        tlsOpts(a.app.ports.tls!, withCert(pki.client)),
      );
      const topic = `mosq/${uid()}`;
      await subscribe(client, topic, { qos: 1 });
      const tlsArgs = ["-h", "127.0.0.1", "-p", String(a.app.ports.tls), "--cafile", pki.caFile];
      await procs.run("mosquitto_pub", [
        ...tlsArgs,
        "--cert",
        pki.client.cert,
        "--key",
        pki.client.key,
        "-t",
        topic,
        "-m",
        "from mosquitto",
        "-q",
        "1",
      ]);
      await inbox.payload("from mosquitto");
      // Without a client certificate the broker refuses it.
      const p = procs.start("mosquitto_pub", [...tlsArgs, "-t", topic, "-m", "no cert", "-q", "1"]);
      const r = await procs.wait(p, "mosquitto_pub without a certificate", 10_000);
      assert.notEqual(r.code, 0);
    });

    test("mosquitto_sub subscribes over TLS (server certificate only)", T, async () => {
      const a = await start({});
      await procs.run("mosquitto_sub", [
        "-h",
        "127.0.0.1",
        "-p",
        String(a.app.ports.tls),
        "--cafile",
        pki.caFile,
        "-t",
        `mosq/${uid()}`,
        "-E",
      ]);
    });
  });

  describe("key store and start-up errors", () => {
    for (const rsa of [false, true]) {
      test(`PKCS#12 key store (${rsa ? "RSA" : "EC"} key) serves TLS`, T, async () => {
        const store = pki.p12("s3cret", { rsa });
        const a = await startTestApp({
          ssl: {
            enable: true,
            keyStoreLocation: store,
            keyStorePassword: "s3cret",
            keyStoreType: "PKCS12",
          },
        });
        apps.push(a);
        const { client } = await clients.connect(tlsOpts(a.app.ports.tls!));
        assert.equal(client.connected, true);
      });
    }

    test("a wrong key store password is a clear start-up error", T, async () => {
      const store = pki.p12("right");
      await assert.rejects(
        startTestApp({ ssl: { enable: true, keyStoreLocation: store, keyStorePassword: "wrong" } }),
        /ssl\.key-store-password: wrong password/,
      );
    });

    test("a missing certificate file names the key and the path", T, async () => {
      await assert.rejects(
        startTestApp({
          ssl: { enable: true, certFile: `${pki.dir}/nope.crt`, keyFile: pki.server.key },
        }),
        (e: Error) =>
          e.message.startsWith("ssl.cert-file: cannot read") && e.message.includes("nope.crt"),
      );
      await assert.rejects(
        startTestApp({ ssl: { enable: true, keyStoreLocation: `${pki.dir}/missing.p12` } }),
        /ssl\.key-store-location: cannot read .*missing\.p12/,
      );
    });

    test("client-auth without ca-file is refused at start", T, async () => {
      await assert.rejects(
        startTestApp({
          ssl: {
            enable: true,
            certFile: pki.server.cert,
            keyFile: pki.server.key,
            clientAuth: "REQUIRE",
          },
        }),
        /ssl\.ca-file/,
      );
    });
  });

  describe("certificate reload", () => {
    /** Certificate files the test may overwrite. */
    function ownCopies(): { cert: string; key: string } {
      const id = uid();
      const cert = `${pki.dir}/live-${id}.crt`;
      const key = `${pki.dir}/live-${id}.key`;
      copyFileSync(pki.server.cert, cert);
      copyFileSync(pki.server.key, key);
      return { cert, key };
    }

    test("reload: new connections get the new certificate, old ones stay up", T, async () => {
      const files = ownCopies();
      const a = await start({ certFile: files.cert, keyFile: files.key });
      const port = a.app.ports.tls!;
      assert.equal(await serverCn(port), "localhost");
      const old = await clients.connect(tlsOpts(port));
      copyFileSync(pki.server2.cert, files.cert);
      copyFileSync(pki.server2.key, files.key);
      assert.equal(await a.app.reloadCertificates(), true);
      assert.ok(a.log.some((l) => l.includes("TLS certificates reloaded")));
      assert.equal(await serverCn(port), "mqttx-reloaded");
      const fresh = await clients.connect(tlsOpts(port));
      // The old connection still works end to end.
      const topic = `reload/${uid()}`;
      await subscribe(old.client, topic);
      await publish(fresh.client, topic, "after reload", { qos: 1 });
      await old.inbox.payload("after reload");
      assert.equal(old.client.connected, true);
    });

    test("a reload that fails keeps the old certificate", T, async () => {
      const files = ownCopies();
      const a = await start({ certFile: files.cert, keyFile: files.key });
      copyFileSync(pki.server2.cert, files.cert); // key no longer matches the certificate
      assert.equal(await a.app.reloadCertificates(), false);
      assert.ok(a.log.some((l) => l.includes("reload failed")), a.log.join("\n"));
      assert.equal(await serverCn(a.app.ports.tls!), "localhost");
    });

    test("changed files are picked up without a signal", T, async () => {
      const files = ownCopies();
      const a = await start({ certFile: files.cert, keyFile: files.key }, {}, {
        certWatchInterval: 50,
      });
      copyFileSync(pki.server2.key, files.key);
      copyFileSync(pki.server2.cert, files.cert);
      const deadline = Date.now() + 10_000;
      while (!a.log.some((l) => l.includes("TLS certificates reloaded")) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(await serverCn(a.app.ports.tls!), "mqttx-reloaded");
    });
  });
});

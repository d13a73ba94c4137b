/**
 * A throwaway PKI for TLS tests, made with Debian's `openssl` in a temporary
 * directory: a test CA; server certificates for localhost/127.0.0.1 (two, for
 * reload tests); a client certificate (CN "alice"), an expired one, one
 * from a foreign CA, and one without X.509 v3 extensions (CN "bob", what
 * `openssl x509 -req` makes without `-extfile`); PKCS#12 key stores. `remove()` deletes the directory.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** Paths. */
  caFile: string;
  server: KeyPair;
  /** A second server certificate from the same CA (CN "mqttx-reloaded"). */
  server2: KeyPair;
  client: KeyPair;
  expiredClient: KeyPair;
  foreignClient: KeyPair;
  /** X.509 v1: no extensions at all (no basicConstraints, no extendedKeyUsage). */
  v1Client: KeyPair;
  /** PEM text of a file. */
  read(path: string): string;
  /** PKCS#12 of `pair` (+ CA) with this password (`rsa` makes an RSA key instead). */
  p12(password: string, opts?: { rsa?: boolean }): string;
  remove(): void;
}

let available: boolean | undefined;

export function opensslAvailable(): boolean {
  available ??= spawnSync("openssl", ["version"], { stdio: "ignore" }).error === undefined;
  return available;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "mqttx-pki-"));
  const p = (f: string) => join(dir, f);
  writeFileSync(
    p("server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\n" +
      "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  writeFileSync(p("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");

  const ca = (name: string, cn: string) =>
    openssl(dir, [
      "req",
      "-x509",
      ...EC,
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
    ]);
  const leaf = (
    name: string,
    cn: string,
    caName: string,
    ext: string | undefined,
    days = "2",
    rsa = false,
  ) => {
    openssl(dir, [
      "req",
      ...(rsa ? ["-newkey", "rsa:2048"] : EC),
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${caName}.crt`,
      "-CAkey",
      `${caName}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      days,
      ...(ext ? ["-extfile", ext] : []),
    ]);
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  ca("ca", "mqttx test CA");
  ca("foreign-ca", "someone else's CA");
  const server = leaf("server", "localhost", "ca", "server.ext");
  const server2 = leaf("server2", "mqttx-reloaded", "ca", "server.ext");
  const client = leaf("client", "alice", "ca", "client.ext");
  // -days -1: not after is a day before now.
  const expiredClient = leaf("expired", "alice", "ca", "client.ext", "-1");
  const foreignClient = leaf("foreign", "mallory", "foreign-ca", "client.ext");
  const v1Client = leaf("v1", "bob", "ca", undefined);
  let n = 0;
  return {
    dir,
    caFile: p("ca.crt"),
    server,
    server2,
    client,
    expiredClient,
    foreignClient,
    v1Client,
    read: (path) => readFileSync(path, "utf8"),
    p12(password, opts = {}) {
      const name = `store${n++}`;
      const pair = opts.rsa
        ? leaf(`${name}-rsa`, "localhost", "ca", "server.ext", "2", true)
        : server;
      openssl(dir, [
        "pkcs12",
        "-export",
        "-in",
        pair.cert,
        "-inkey",
        pair.key,
        "-certfile",
        "ca.crt",
        "-out",
        `${name}.p12`,
        "-passout",
        `pass:${password}`,
      ]);
      return p(`${name}.p12`);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------------------
// Starting the app with listener and ssl overrides, capturing its log.

import type { MqttxConfig } from "../../src/config/types.ts";
import type { RunningApp } from "../../src/app.ts";
import { type DeepPartial, testRuntime } from "./harness.ts";

export interface TestApp {
  app: RunningApp;
  log: string[];
  stop(): Promise<void>;
}

/** startApp on 127.0.0.1 with the TCP socket on port 0 unless overridden. */
export async function startTestApp(
  over: DeepPartial<MqttxConfig>,
  opts: { certWatchInterval?: number } = {},
): Promise<TestApp> {
  const { defaultConfig } = await import("../../src/config/schema.ts");
  const { startApp } = await import("../../src/app.ts");
  const base = defaultConfig();
  const config: MqttxConfig = {
    ...base,
    host: "127.0.0.1",
    ...(over as Partial<MqttxConfig>),
    socket: { ...base.socket, port: 0, ...over.socket },
    websocket: { ...base.websocket, ...over.websocket },
    ssl: { ...base.ssl, ...over.ssl },
    listeners: (over.listeners ?? []) as MqttxConfig["listeners"],
  };
  const log: string[] = [];
  const app = await startApp(await testRuntime(), config, {
    log: (l) => log.push(l),
    certWatchInterval: opts.certWatchInterval ?? 0,
  });
  return { app, log, stop: () => app.stop() };
}

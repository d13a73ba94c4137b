/**
 * The two embedding examples (examples/deno_gateway.ts on Deno,
 * examples/bun_gateway.ts on Bun) run as real processes: MQTT.js connects
 * over WebSocket on the program's own HTTP server; the custom authentication
 * hook accepts the right password and refuses a wrong one; a published
 * message reaches the program's in-process subscriber; its own route answers.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { Clients, publish, uid, withTimeout } from "./helpers/mqttjs.ts";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;
const bin = (name: string) => `${root}node_modules/.bin/${name}`;
const EXAMPLES = [
  { name: "Deno", cmd: bin("deno"), args: ["run", "-A", "examples/deno_gateway.ts"] },
  { name: "Bun", cmd: bin("bun"), args: ["examples/bun_gateway.ts"] },
];

let child: ChildProcess | undefined;
let url = "";
const clients = new Clients(() => url);

afterEach(async () => {
  await clients.closeAll();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    await withTimeout(exited, "the example to exit", 10_000).catch(() => child?.kill("SIGKILL"));
  }
  child = undefined;
});

for (const ex of EXAMPLES) {
  describe(`examples: ${ex.name} gateway embedding mqttx`, () => {
    test("custom auth accepts and refuses; in-process subscriber sees messages", {
      timeout: 60_000,
    }, async () => {
      const secret = `s-${uid()}`;
      const c = spawn(ex.cmd, ex.args, {
        cwd: root,
        env: { ...process.env, PORT: "0", GATEWAY_SECRET: secret },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = c;
      let out = "", err = "";
      c.stdout!.on("data", (d) => (out += d));
      c.stderr!.on("data", (d) => (err += d));
      const waitFor = (re: RegExp, what: string) =>
        withTimeout(
          new Promise<RegExpMatchArray>((resolve, reject) => {
            const check = () => {
              const m = out.match(re);
              if (m) resolve(m);
            };
            c.stdout!.on("data", check);
            c.once("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
            check();
          }),
          `${what} (stdout: ${out} stderr: ${err})`,
          30_000,
        );
      const port = Number((await waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/, "start"))[1]);
      url = `ws://127.0.0.1:${port}/mqtt`;

      const own = await fetch(`http://127.0.0.1:${port}/`);
      assert.deepEqual(await own.json(), { connected: 0 });

      for (const version of [4, 5] as const) {
        const refused = await clients.connect({
          protocolVersion: version,
          clientId: uid(),
          username: "device",
          password: "wrong",
        }).then(() => undefined, (e: { code?: number }) => e.code);
        assert.equal(refused, version === 5 ? 0x86 : 4, `MQTT ${version} refusal code`);
      }

      const ok = await clients.connect({
        clientId: `dev-${uid()}`,
        username: "device",
        password: secret,
      });
      assert.equal(ok.client.connected, true);
      const word = uid();
      await publish(ok.client, "devices/d1/temp", word, { qos: 1 });
      await waitFor(new RegExp(`\\[gateway\\] devices/d1/temp: ${word}`), "the in-process message");
      assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/`)).json(), { connected: 1 });
    });
  });
}

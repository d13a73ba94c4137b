/**
 * The benchmark's load generator (bench/loadgen, C) against a real broker: it must count what it
 * measures correctly, or `make bench` reports fiction. Builds it with make/cc into a temp folder.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mustRun, startBroker } from "./helpers/harness.ts";

const SRC = fileURLToPath(new URL("../bench/loadgen", import.meta.url));

interface Run {
  code: number;
  result: Record<string, unknown> & { lat_us?: { n: number } };
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function build(): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "mqttx-loadgen-"));
  const bin = join(dir, "mqttx-loadgen");
  const made = await run("make", ["-s", "-C", SRC, `BIN=${bin}`]);
  if (made.code === 0) return bin;
  rmSync(dir, { recursive: true, force: true });
  if (mustRun()) throw new Error(`cannot build bench/loadgen (make, gcc):\n${made.out}`);
  return null;
}

async function loadgen(bin: string, port: number, args: string): Promise<Run> {
  const { code, out } = await run(bin, ["--port", `${port}`, "--quiet", ...args.split(" ")]);
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `no RESULT line (exit ${code}):\n${out}`);
  return { code, result: JSON.parse(line.slice(7)) };
}

const bin = await build();
const opts = { skip: bin ? false : "make/cc not available" };

describe("bench/loadgen against mqttx", () => {
  after(() => {
    if (bin) rmSync(dirname(bin), { recursive: true, force: true });
  });

  for (const qos of [0, 1, 2]) {
    test(
      `QoS ${qos}: 4 publishers × 200 to 2 subscribers on bench/#: all counted once`,
      opts,
      async () => {
        const broker = await startBroker();
        try {
          const { code, result: r } = await loadgen(
            bin!,
            broker.port,
            `--pub 4 --sub 2 --qos ${qos} --count 200 --size 64`,
          );
          assert.equal(code, 0, JSON.stringify(r));
          assert.equal(r.pub_sent, 800);
          assert.equal(r.pub_acked, 800);
          assert.equal(r.recv_expected, 1600);
          assert.equal(r.recv, 1600);
          assert.equal(r.lost, 0);
          assert.equal(r.dup, 0);
          assert.equal(r.lat_us!.n, 1600);
        } finally {
          await broker.stop();
        }
      },
    );
  }

  test("%i topics pair publisher i with subscriber i only", opts, async () => {
    const broker = await startBroker();
    try {
      const { code, result: r } = await loadgen(
        bin!,
        broker.port,
        "--pub 3 --sub 3 --topic t/%i --sub-topic t/%i --qos 1 --count 100 --size 32",
      );
      assert.equal(code, 0, JSON.stringify(r));
      assert.equal(r.recv_expected, 300);
      assert.equal(r.recv, 300);
    } finally {
      await broker.stop();
    }
  });

  test("--sub-port and port lists place clients on other brokers", opts, async () => {
    const [a, b] = [await startBroker(), await startBroker()];
    try {
      // publishers on A, subscribers on B: two separate brokers, so nothing arrives
      const split = await loadgen(
        bin!,
        a.port,
        `--sub-port ${b.port} --pub 2 --sub 2 --qos 1 --count 50 --size 32 --drain 1`,
      );
      assert.equal(split.result.conn_ok, 4, JSON.stringify(split.result));
      assert.equal(split.result.pub_acked, 100);
      assert.equal(split.result.recv, 0);
      // publisher 0 on A, publisher 1 on B, the one subscriber on A: only publisher 0 arrives
      const spread = await loadgen(
        bin!,
        a.port,
        `--port ${a.port},${b.port} --sub-port ${a.port} --pub 2 --sub 1 --qos 1 --count 50 ` +
          "--size 32 --drain 1",
      );
      assert.equal(spread.result.pub_acked, 100, JSON.stringify(spread.result));
      assert.equal(spread.result.recv, 50);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test("--connect-only holds idle connections and reports them", opts, async () => {
    const broker = await startBroker();
    try {
      const { code, result: r } = await loadgen(bin!, broker.port, "--connect-only 50 --hold 0.2");
      assert.equal(code, 0, JSON.stringify(r));
      assert.equal(r.mode, "connect-only");
      assert.equal(r.conn_ok, 50);
      assert.equal(r.conn_fail, 0);
    } finally {
      await broker.stop();
    }
  });

  test("a refused connection is a failure (exit 1), not a hang", opts, async () => {
    const broker = await startBroker();
    const port = broker.port;
    await broker.stop();
    const { code, result: r } = await loadgen(bin!, port, "--pub 1 --count 1 --conn-timeout 2");
    assert.equal(code, 1);
    assert.equal(r.conn_fail, 1);
  });
});

/**
 * Kafka for tests: librdkafka's mock cluster (a real Kafka protocol server),
 * run by the small C program tests/kafka_mock/mock_cluster.c, built here on
 * first use with gcc and pkg-config. Records are read and written with kcat.
 * `kafkaAvailable()` is false when gcc, librdkafka-dev or kcat is missing
 * (tests then skip, or fail under MQTTX_REQUIRE_INTEGRATION=1).
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";

const SOURCE = new URL("../kafka_mock/mock_cluster.c", import.meta.url).pathname;
const BINARY = new URL("../../.scratch/mock_cluster", import.meta.url).pathname;

let built: boolean | undefined;

/** Build the mock cluster program if needed; false when the toolchain or kcat is missing. */
export function kafkaAvailable(): boolean {
  if (built !== undefined) return built;
  built = false;
  if (spawnSync("kcat", ["-V"], { stdio: "ignore" }).error) return false;
  if (!existsSync(BINARY) || statSync(BINARY).mtimeMs < statSync(SOURCE).mtimeMs) {
    mkdirSync(new URL("../../.scratch/", import.meta.url).pathname, { recursive: true });
    const r = spawnSync("sh", [
      "-c",
      `gcc -O1 -Wall -o "${BINARY}.tmp" "${SOURCE}" $(pkg-config --cflags --libs rdkafka) && mv "${BINARY}.tmp" "${BINARY}"`,
    ], { stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) {
      console.error(`mock_cluster build failed: ${r.stderr}`);
      return false;
    }
  }
  return built = true;
}

/** One parsed Kafka record, as kcat -J prints it. */
export interface KafkaRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  /** Header name → values, in order. */
  headers: Record<string, string[]>;
}

export interface MockKafka {
  /** host:port,... */
  bootstrap: string;
  /** Every broker refuses connections (an outage) / accepts again. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Every record of `topic` so far (all partitions). */
  read(topic: string): Promise<KafkaRecord[]>;
  /** Poll until `topic` holds at least `n` records (or `ms` passed); returns them. */
  waitFor(topic: string, n: number, ms?: number): Promise<KafkaRecord[]>;
  produce(topic: string, key: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

/** Run kcat; its stdout, or a rejection with its stderr. */
function run(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "kcat",
      args,
      { timeout: 20_000, maxBuffer: 64 << 20 },
      (e, out, err) => {
        if (e) reject(new Error(`kcat ${args.join(" ")}: ${e.message} ${err}`));
        else resolve(out);
      },
    );
    child.stdin!.end(input ?? "");
  });
}

/** Start a mock cluster with these topics (`name` or `name:partitions`). */
export async function startMockKafka(topics: string[]): Promise<MockKafka> {
  const child: ChildProcess = spawn(BINARY, topics, { stdio: ["pipe", "pipe", "inherit"] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Uint8Array) => {
    buf += new TextDecoder().decode(d);
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  const nextLine = async (): Promise<string> => {
    const deadline = Date.now() + 10_000;
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error("mock_cluster said nothing");
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return lines.shift()!;
  };
  const bootstrap = await nextLine();
  const command = async (c: string) => {
    child.stdin!.write(c + "\n");
    const answer = await nextLine();
    if (answer !== "ok") throw new Error(`mock_cluster: ${answer}`);
  };
  const read = async (topic: string): Promise<KafkaRecord[]> => {
    const out = await run([
      "-b",
      bootstrap,
      "-C",
      "-t",
      topic,
      "-o",
      "beginning",
      "-e",
      "-q",
      "-J",
      "-X",
      "log_level=0",
    ]);
    return out.split("\n").filter((l) => l.trim() !== "").map((l) => {
      const j = JSON.parse(l);
      const headers: Record<string, string[]> = {};
      const h: string[] = j.headers ?? [];
      for (let i = 0; i + 1 < h.length; i += 2) (headers[h[i]] ??= []).push(h[i + 1]);
      return {
        topic: j.topic,
        partition: j.partition,
        offset: j.offset,
        key: j.key,
        payload: j.payload,
        headers,
      };
    }).sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  };
  return {
    bootstrap,
    down: () => command("down"),
    up: () => command("up"),
    read,
    async waitFor(topic, n, ms = 30_000) {
      const deadline = Date.now() + ms;
      let got = await read(topic);
      while (got.length < n && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 300));
        got = await read(topic);
      }
      return got;
    },
    async produce(topic, key, value) {
      // kcat -P reads records from stdin; -K: splits key and value.
      await run(
        ["-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-X", "log_level=0"],
        `${key}\t${value}\n`,
      );
    },
    async stop() {
      child.stdin!.end();
      child.kill("SIGTERM");
      await exited;
    },
  };
}

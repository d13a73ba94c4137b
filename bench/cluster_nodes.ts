/**
 * Processes for the cluster benchmarks: a redis-server and mqttx nodes on the Redis store, each
 * on a port the kernel hands out (another worktree's run may hold any fixed one), pinned to a CPU.
 */
import {
  BROKERS,
  BUILD,
  cpuTicks,
  firstConnack,
  readProc,
  ROOT,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

/** A free loopback TCP port (the kernel's choice; closed again at once). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface Proc {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
}

/** A scratch folder for configs and logs under bench/.build. */
export async function scratch(prefix: string): Promise<string> {
  await Deno.mkdir(BUILD, { recursive: true });
  return await Deno.makeTempDir({ dir: BUILD, prefix });
}

export async function startRedis(dir: string, cpu: number): Promise<Proc> {
  const port = freePort();
  const child = spawnPinned(cpu, [
    "redis-server",
    ...["--port", `${port}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
  ], `${dir}/redis-${port}.log`);
  for (let i = 0; i < 100; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
    if (conn) {
      conn.close();
      break;
    }
    await sleep(50);
  }
  return { child, pid: child.pid, port };
}

/** An mqttx node (BROKER, mqttx-bun by default) on the Redis store, cluster on or off. */
export async function startNode(
  dir: string,
  cpu: number,
  redisPort: number,
  id: string,
  cluster: boolean,
  broker = "mqttx-bun",
  kafka?: KafkaMock,
): Promise<Proc> {
  const port = freePort();
  const conf = `${dir}/${id}-${port}.yml`;
  await Deno.writeTextFile(
    conf,
    `mqttx:\n  broker-id: "${id}"\n  host: 127.0.0.1\n  enable-test-mode: false\n` +
      `  socket:\n    port: ${port}\n  redis:\n    url: redis://127.0.0.1:${redisPort}\n` +
      `  cluster:\n    enable: ${cluster}\n` +
      (kafka && cluster ? `    type: kafka\n    kafka-brokers: [${kafka.bootstrap}]\n` : ""),
  );
  const cmd = await BROKERS.find((b) => b.name === broker)!.command(port);
  const args = [...cmd.slice(0, cmd.indexOf("--config")), "--config", conf];
  const child = spawnPinned(cpu, args, `${dir}/${id}-${port}.log`);
  let exited = false;
  child.status.then(() => exited = true);
  await firstConnack(port, performance.now(), () => exited);
  return { child, pid: child.pid, port };
}

export interface KafkaMock {
  bootstrap: string;
  child: Deno.ChildProcess;
}

/**
 * BUS=kafka: librdkafka's mock cluster (tests/kafka_mock, built with gcc) as the
 * cluster bus, pinned to `cpu`; undefined for the Redis bus. It exits when its
 * stdin closes, so it ends with this process.
 */
export async function kafkaBusFromEnv(dir: string, cpu: number): Promise<KafkaMock | undefined> {
  if (Deno.env.get("BUS")?.trim() !== "kafka") return undefined;
  const bin = `${dir}/mock_cluster`;
  const cc = await new Deno.Command("sh", {
    args: [
      "-c",
      `gcc -O1 -o ${bin} tests/kafka_mock/mock_cluster.c $(pkg-config --cflags --libs rdkafka)`,
    ],
    cwd: ROOT,
  }).output();
  if (!cc.success) throw new Error(`mock_cluster: ${new TextDecoder().decode(cc.stderr)}`);
  const child = new Deno.Command("taskset", {
    args: ["-c", `${cpu}`, bin],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) text += new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  return { bootstrap: text.split("\n")[0].trim(), child };
}

export async function stopKafka(kafka: KafkaMock | undefined): Promise<void> {
  if (!kafka) return;
  kafka.child.kill("SIGTERM");
  await kafka.child.status;
}

export const stopAll = (procs: Proc[]) => Promise.all(procs.map((p) => stop(p.child)));

/** All CPUs' busy ticks (user+nice+system+irq+softirq+steal) from /proc/stat. */
async function machineBusy(): Promise<number> {
  const f = ((await readProc("/proc/stat")).match(/^cpu (.*)$/m)?.[1] ?? "").trim()
    .split(/\s+/).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
}

export interface CpuUse<T> {
  result: T;
  /** CPU seconds (user + system) of each pid while `f` ran. */
  cpu: number[];
  /** CPU seconds the whole machine was busy meanwhile, and the wall seconds. */
  machine: number;
  wall: number;
}

/** Runs `f`, measuring the CPU time of `pids` and of the whole machine meanwhile. */
export async function cpuDuring<T>(pids: number[], f: () => Promise<T>): Promise<CpuUse<T>> {
  const ticks = () => Promise.all(pids.map(async (p) => (await cpuTicks(p)).broker));
  const [before, mBefore, t0] = [await ticks(), await machineBusy(), performance.now()];
  const result = await f();
  const [after, mAfter, t1] = [await ticks(), await machineBusy(), performance.now()];
  return {
    result,
    cpu: after.map((t, i) => (t - before[i]) / 100), // USER_HZ is 100 on Linux
    machine: (mAfter - mBefore) / 100,
    wall: (t1 - t0) / 1000,
  };
}

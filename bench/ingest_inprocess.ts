/**
 * S1 QoS 0 without sockets: what the broker's JavaScript (and the JIT compiling it) costs for a
 * burst into a fresh process, apart from the kernel's TCP work and other processes' noise on it.
 *
 *   taskset -c 1 bun bench/ingest_inprocess.ts [checkout] [passes]
 *   taskset -c 1 deno run -A bench/ingest_inprocess.ts [checkout] [passes]
 *
 * Starts the app of `checkout` (default: this one) with a runtime whose listener hands out fake
 * connections, opens 1,000 of them (CONNECT 3.1.1), then feeds each the bytes mqttx-loadgen sends
 * in S1 QoS 0 (100 PUBLISHes of 1 KiB on bench/<i>, a PINGREQ after every 32) as fresh 17 KiB
 * chunks (the mean read size `strace` showed for S1 on Bun), round robin over the connections,
 * through the production path (`Connection.data`). Prints one JSON line per pass: CPU of the
 * whole process (every thread: the JIT's too) over the pass. Pass 0 is the fresh burst that
 * `make bench` measures; later passes show the same work once the JIT is done. Compare
 * checkouts alternating, many runs, medians: the machine is shared. A first line gives the CPU
 * of the 1,000 CONNECTs and the second after them (what the JIT compiled for them included);
 * `# pass N` on stderr splits a `BUN_JSC_reportCompileTimes=1` log by pass.
 */
import process from "node:process";
import { setImmediate } from "node:timers";

const tree = process.argv[2] ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const passes = Number(process.argv[3] ?? 1);
const N = 1000, PER_CLIENT = 100, SIZE = 1024, CHUNK = 17 * 1024;

const { startApp } = await import(`${tree}/src/app.ts`);
const { parseConfig } = await import(`${tree}/src/config/load.ts`);
const runtime = "Bun" in globalThis
  ? (await import(`${tree}/src/runtime/bun.ts`)).bunRuntime
  : (await import(`${tree}/src/runtime/deno.ts`)).denoRuntime;

interface Callbacks {
  data(chunk: Uint8Array): void | Promise<void>;
}
let accept: ((conn: FakeConn) => void) | undefined;
class FakeConn {
  callbacks: Callbacks | undefined;
  readonly remoteAddr = "127.0.0.1:1";
  readonly peerCertificate = undefined;
  start(callbacks: Callbacks): void {
    this.callbacks = callbacks;
  }
  write(): void {}
  close(): void {}
  endWrite(): void {}
  get readable(): ReadableStream<Uint8Array> {
    throw new Error("callback path only");
  }
  get writable(): WritableStream<Uint8Array> {
    throw new Error("callback path only");
  }
}
const fakeRuntime = {
  ...runtime,
  listen(_opts: unknown, onConn: (conn: FakeConn) => void) {
    accept = onConn;
    return Promise.resolve({ port: 1, close: () => Promise.resolve() });
  },
};
const config = parseConfig(
  "mqttx:\n  host: 127.0.0.1\n  enable-test-mode: true\n  socket:\n    enable: true\n" +
    "    port: 1\n  websocket:\n    enable: false\n  sys-topic:\n    enable: false\n",
  "ingest_inprocess.yml",
);
await startApp(fakeRuntime, config, { quiet: true, handleSighup: false });

const utf8 = new TextEncoder();
function frame(type: number, body: number[]): Uint8Array {
  const head = [type];
  let x = body.length;
  do {
    head.push((x & 127) | (x > 127 ? 128 : 0));
    x >>= 7;
  } while (x);
  return new Uint8Array([...head, ...body]);
}
const str = (s: string) => {
  const b = utf8.encode(s);
  return [b.length >> 8, b.length & 255, ...b];
};
const payload = Array.from({ length: SIZE }, (_, i) => 97 + i % 26);

const conns: FakeConn[] = [];
const connectCpu = process.cpuUsage();
for (let i = 0; i < N; i++) {
  const c = new FakeConn();
  conns.push(c);
  accept!(c);
  await c.callbacks!.data(frame(0x10, [...str("MQTT"), 4, 2, 0, 60, ...str(`lg-${i}`)]));
}
await new Promise((r) => setTimeout(r, 1000));
{
  // The 1,000 CONNECTs (and what the JIT compiled for them by the end of the second after).
  const cpu = process.cpuUsage(connectCpu);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(JSON.stringify({ runtime: runtime.name, pass: "connect", cpuMs }));
}

// What each client sends: windows of 32 PUBLISHes, each window ending with a PINGREQ.
const streams = conns.map((_, i) => {
  const pub = frame(0x30, [...str(`bench/${i}`), ...payload]);
  const parts: number[] = [];
  for (let k = 0; k < PER_CLIENT; k++) {
    parts.push(...pub);
    if (k % 32 === 31 || k === PER_CLIENT - 1) parts.push(0xc0, 0);
  }
  return new Uint8Array(parts);
});

for (let pass = 0; pass < passes; pass++) {
  console.error(`# pass ${pass}`); // splits a BUN_JSC_reportCompileTimes=1 log by pass
  const before = process.cpuUsage();
  const started = performance.now();
  const pos = new Array<number>(N).fill(0);
  for (let left = true; left;) {
    left = false;
    for (let i = 0; i < N; i++) {
      const s = streams[i];
      if (pos[i] >= s.length) continue;
      left = true;
      const end = Math.min(s.length, pos[i] + CHUNK);
      const busy = conns[i].callbacks!.data(s.slice(pos[i], end)); // a fresh chunk, as sockets give
      pos[i] = end;
      if (busy) await busy;
    }
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 0));
  const cpu = process.cpuUsage(before);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(JSON.stringify({
    checkout: tree,
    runtime: runtime.name,
    pass,
    msgs: N * PER_CLIENT,
    cpuMs: Math.round(cpuMs * 10) / 10,
    wallMs: Math.round((performance.now() - started) * 10) / 10,
    msgsPerCpuS: Math.round(N * PER_CLIENT / cpuMs * 1000),
  }));
}
process.exit(0);

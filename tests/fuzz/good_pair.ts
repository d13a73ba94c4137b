/**
 * The well-behaved pair the fuzzer watches: a subscriber on `fz/good/#` at QoS 1
 * that acknowledges at once, and a publisher sending numbered QoS 1 messages with
 * at most `window` not yet delivered to the subscriber (end-to-end flow control:
 * a publisher faster than its subscriber would make the broker drop the excess,
 * by design). The subscriber must get exactly 1..n, in order, no duplicates; the
 * time it takes gives the pair's throughput.
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { encode } from "../../src/mqtt/encoder.ts";
import { PacketDecoder } from "../../src/mqtt/decoder.ts";
import type { Packet } from "../../src/mqtt/packet.ts";

/** A raw MQTT 3.1.1 client with an inbox. */
class RawClient {
  private readonly decoder = new PacketDecoder();
  private readonly handlers: ((p: Packet) => void)[] = [];
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.decoder.feed(new Uint8Array(d), (p) => this.dispatch(p)));
    socket.on("error", () => {});
  }

  static open(port: number, clientId: string, timeoutMs: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      const c = new RawClient(socket);
      const timer = setTimeout(() => reject(new Error(`${clientId}: no CONNACK`)), timeoutMs);
      socket.once("error", (e) => reject(e));
      c.once((p) => {
        clearTimeout(timer);
        if (p.type === 2 && p.reasonCode === 0) resolve(c);
        else reject(new Error(`${clientId}: refused ${JSON.stringify(p)}`));
      });
      c.send({
        type: 1,
        protocolName: "MQTT",
        protocolVersion: 4,
        clean: true,
        keepAlive: 60,
        clientId,
      });
    });
  }

  send(p: Packet): void {
    this.socket.write(Buffer.from(encode(p, 4)));
  }

  on(f: (p: Packet) => void): void {
    this.handlers.push(f);
  }

  private once(f: (p: Packet) => void): void {
    const g = (p: Packet) => {
      this.handlers.splice(this.handlers.indexOf(g), 1);
      f(p);
    };
    this.handlers.push(g);
  }

  private dispatch(p: Packet): void {
    for (const h of [...this.handlers]) h(p);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface PairResult {
  ok: boolean;
  error?: string;
  messages: number;
  ms: number;
  /** Messages per second, first publish to last delivery. */
  rate: number;
}

/** One run of `n` messages; fails if not all arrive, exactly and in order, within `timeoutMs`. */
export async function runGoodPair(port: number, n: number, timeoutMs: number): Promise<PairResult> {
  const tag = Math.random().toString(36).slice(2, 8);
  let sub: RawClient | undefined, pub: RawClient | undefined;
  const fail = (error: string, ms = 0): PairResult => ({
    ok: false,
    error,
    messages: n,
    ms,
    rate: 0,
  });
  try {
    sub = await RawClient.open(port, `fz-good-sub-${tag}`, timeoutMs);
    pub = await RawClient.open(port, `fz-good-pub-${tag}`, timeoutMs);
    const subscribed = new Promise<void>((resolve) => sub!.on((p) => p.type === 9 && resolve()));
    sub.send({
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: `fz/good/${tag}/#`, qos: 1 }],
    });
    await subscribed;
    const start = Date.now();
    let extra = 0;
    const result = await new Promise<PairResult>((resolve) => {
      let expected = 1;
      let acked = 0, sent = 0;
      const window = 100;
      const timer = setTimeout(
        () => resolve(fail(`timed out: ${expected - 1}/${n} delivered, ${acked} acked`, timeoutMs)),
        timeoutMs,
      );
      const publishMore = () => {
        while (sent < n && sent - acked < window && sent - (expected - 1) < window) {
          sent++;
          pub!.send({
            type: 3,
            topic: `fz/good/${tag}/t`,
            payload: new TextEncoder().encode(String(sent)),
            qos: 1,
            retain: false,
            dup: false,
            packetId: sent,
          });
        }
      };
      pub!.on((p) => {
        if (p.type !== 4) return;
        acked++;
        publishMore();
      });
      sub!.on((p) => {
        if (p.type !== 3) return;
        sub!.send({ type: 4, packetId: p.packetId! });
        if (expected > n) {
          extra++;
          return;
        }
        const got = Number(new TextDecoder().decode(p.payload));
        if (got !== expected || p.dup) {
          clearTimeout(timer);
          resolve(fail(`expected message ${expected}, got ${got}${p.dup ? " (dup)" : ""}`));
          return;
        }
        if (expected++ < n) publishMore();
        else {
          clearTimeout(timer);
          const ms = Math.max(1, Date.now() - start);
          resolve({ ok: true, messages: n, ms, rate: Math.round((n * 1000) / ms) });
        }
      });
      publishMore();
    });
    // Nothing more may follow (a duplicate would).
    await new Promise((r) => setTimeout(r, 100));
    if (result.ok && extra > 0) return fail(`${extra} message(s) beyond the ${n} sent`);
    return result;
  } catch (e) {
    return fail(String(e));
  } finally {
    sub?.close();
    pub?.close();
  }
}

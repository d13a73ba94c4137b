/**
 * Warm-up at start (`warm-up: true`): before the listeners open, a throwaway broker carries a
 * short synthetic load through the production read and write paths (decoder, dispatch, router,
 * delivery, encoder), so a JIT runtime has compiled the per-message code before the first client
 * arrives. Without it, a burst into a fresh process (every device reconnecting after a restart)
 * runs in baseline code while the optimizing compilers take the same CPU
 * (bench/notes/s1_bun.md, round seven).
 *
 * Nothing of it reaches the real broker: its own in-memory store, hooks of its own (the caller's
 * side-effect-free ones), no log, no listener, no timer left; it is closed before the real
 * listeners open. Its traffic is shaped as real traffic is, because a JIT compiles for what it
 * has seen and throws the code away at the first case it has not: publishes with nobody
 * subscribed and with one subscriber (3.1.1 or 5.0), QoS 0 and 1 publishers
 * on 3.1.1 and 5.0, reads that end inside a packet, PINGREQs. Not covered: QoS 1/2 deliveries
 * (their acknowledgements), fan-out, retained messages, shared subscriptions, wills,
 * authentication.
 */
import type { BrokerOptions } from "./api.ts";
import { Broker } from "./broker.ts";
import type { Conn, ConnCallbacks } from "./conn.ts";
import type { BrokerHooks } from "./hooks.ts";

/**
 * A connection fed by the warm-up; what the broker writes to it is dropped. No `endWrite`: the
 * broker then closes it at once instead of lingering on a timer (connection.ts shutdownTransport).
 */
class WarmUpConn implements Conn {
  readonly remoteAddr = "127.0.0.1:0";
  callbacks: ConnCallbacks | undefined;
  start(callbacks: ConnCallbacks): void {
    this.callbacks = callbacks;
  }
  write(_bytes: Uint8Array, _length?: number): void {}
  close(): void {
    const c = this.callbacks;
    this.callbacks = undefined;
    c?.end();
  }
  /** Hand `bytes` to the broker as reads of `cut` bytes, waiting while it says so. */
  async feed(bytes: Uint8Array, cut: number): Promise<void> {
    for (let at = 0; at < bytes.length && this.callbacks; at += cut) {
      const busy = this.callbacks.data(bytes.slice(at, Math.min(bytes.length, at + cut)));
      if (busy) await busy;
    }
  }
}

/** One packet: fixed header byte, remaining length, then the parts. */
function packet(first: number, ...parts: Uint8Array[]): Uint8Array {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const head = [first];
  let x = size;
  do {
    head.push((x & 127) | (x > 127 ? 128 : 0));
    x >>= 7;
  } while (x);
  const out = new Uint8Array(head.length + size);
  out.set(head);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const utf8 = new TextEncoder();
function str(s: string): Uint8Array {
  const b = utf8.encode(s);
  return new Uint8Array([b.length >> 8, b.length & 255, ...b]);
}
const bytes = (...b: number[]) => new Uint8Array(b);

function concat(list: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(list.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of list) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface WarmUpOptions {
  /** Publishing clients (default 100). */
  clients?: number;
  /** PUBLISHes per client in each phase (default 100; two phases). */
  perClient?: number;
  /** Payload bytes (default 512, less when `maximumPacketSize` is smaller). */
  payloadSize?: number;
}

/** What the warm-up broker did, from its own counters. */
export interface WarmUpResult {
  /** Messages accepted for routing. */
  published: number;
  /** Deliveries routed to its subscribers. */
  delivered: number;
  /**
   * Its connections not yet closed by the transport when it returned: each would be a linger
   * timer keeping the throwaway broker alive (0 expected).
   */
  lingering: number;
}

/**
 * Runs the warm-up on a broker of its own made with `options` and `hooks`; resolves once that
 * broker is closed.
 */
export async function warmUp(
  options: BrokerOptions,
  hooks: BrokerHooks[],
  o: WarmUpOptions = {},
): Promise<WarmUpResult> {
  const clients = o.clients ?? 100, perClient = o.perClient ?? 100;
  // Same shape of options as the real broker's (a JIT checks objects by their shape).
  const broker = new Broker({ ...options, hooks, log: undefined });
  const conns: WarmUpConn[] = [];
  for (let i = 0; i < clients; i++) {
    const c = new WarmUpConn();
    broker.handleConnection(c);
    conns.push(c);
    // Every fourth a 5.0 client (empty properties), the rest 3.1.1; clean sessions. A
    // max-bytes-in-message too small for a CONNECT closes them: the warm-up then does nothing.
    const v5 = i % 4 === 3;
    const connect = v5
      ? packet(0x10, str("MQTT"), bytes(5, 2, 0, 60, 0), str(`$warm-up-${i}`))
      : packet(0x10, str("MQTT"), bytes(4, 2, 0, 60), str(`$warm-up-${i}`));
    await c.feed(connect, connect.length);
  }
  // Within max-bytes-in-message, so no PUBLISH is refused (topic, id and header: < 64 bytes).
  const size = o.payloadSize ?? Math.max(0, Math.min(512, options.maximumPacketSize - 64));
  const payload = new Uint8Array(size).fill(97);
  const traffic = conns.map((_, i) => {
    const v5 = i % 4 === 3;
    const list: Uint8Array[] = [];
    for (let k = 0; k < perClient; k++) {
      const qos = k % 8 === 7 ? 1 : 0;
      const topic = str(`warm/${i % 20}/${k % 5}`);
      const id = qos ? bytes(0, (k & 127) + 1) : bytes();
      list.push(packet(0x30 | (qos << 1), topic, id, v5 ? bytes(0) : bytes(), payload));
      if (k % 32 === 31) list.push(bytes(0xc0, 0));
    }
    return concat(list);
  });
  // Reads that end inside a packet, of a few sizes.
  const phase = async () => {
    for (let i = 0; i < clients; i++) await conns[i].feed(traffic[i], 4096 + 1021 * (i % 13));
    await new Promise((r) => setTimeout(r, 0));
  };
  // A subscriber (QoS 0; 3.1.1 and 5.0) on a quarter of the topics, one each: two on a topic
  // compiled ingest more generally (S1 QoS 0 on Bun -5%); then nobody subscribed (ingest).
  const subscribers = conns.filter((_, i) => i % 40 === 0 || i % 40 === 23);
  const v5 = (n: number) => (conns.indexOf(subscribers[n]) % 4 === 3 ? bytes(0) : bytes());
  for (const [n, c] of subscribers.entries()) {
    const sub = packet(0x82, bytes(0, 1), v5(n), str(`warm/${n % 5}/#`), bytes(0));
    await c.feed(sub, sub.length);
  }
  await phase();
  for (const [n, c] of subscribers.entries()) {
    const unsub = packet(0xa2, bytes(0, 2), v5(n), str(`warm/${n % 5}/#`));
    await c.feed(unsub, unsub.length);
  }
  await phase();
  for (const c of conns) await c.feed(bytes(0xe0, 0), 2);
  await broker.close();
  const lingering = conns.filter((c) => c.callbacks !== undefined).length;
  return { published: broker.stats.received, delivered: broker.stats.sent, lingering };
}

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
import { encode, encodedLength, encodeInto } from "../mqtt/encoder.ts";
import type { Packet, ProtocolVersion } from "../mqtt/packet.ts";

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

/**
 * `packets` back to back in one buffer, as a client's socket carries them. The warm-up's packets
 * come from the broker's own encoder (src/mqtt/encoder.ts), which writes client packets as well.
 */
function encodeAll(packets: Packet[], version: ProtocolVersion): Uint8Array {
  const out = new Uint8Array(packets.reduce((n, p) => n + encodedLength(p, version), 0));
  let at = 0;
  for (const p of packets) at = encodeInto(p, version, out, at);
  return out;
}

/** Client `i`'s protocol level: every fourth a 5.0 client (no properties), the rest 3.1.1. */
const version = (i: number): ProtocolVersion => (i % 4 === 3 ? 5 : 4);

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
    // 3.1.1 or 5.0 (see version), clean sessions. A max-bytes-in-message too small for a
    // CONNECT closes them: the warm-up then does nothing.
    const v = version(i);
    const connect = encode({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: v,
      clean: true,
      keepAlive: 60,
      clientId: `$warm-up-${i}`,
    }, v);
    await c.feed(connect, connect.length);
  }
  // Within max-bytes-in-message, so no PUBLISH is refused (topic, id and header: < 64 bytes).
  const size = o.payloadSize ?? Math.max(0, Math.min(512, options.maximumPacketSize - 64));
  const payload = new Uint8Array(size).fill(97);
  const traffic = conns.map((_, i) => {
    const list: Packet[] = [];
    for (let k = 0; k < perClient; k++) {
      const topic = `warm/${i % 20}/${k % 5}`;
      list.push(
        k % 8 === 7
          ? { type: 3, topic, payload, qos: 1, retain: false, dup: false, packetId: (k & 127) + 1 }
          : { type: 3, topic, payload, qos: 0, retain: false, dup: false },
      );
      if (k % 32 === 31) list.push({ type: 12 });
    }
    return encodeAll(list, version(i));
  });
  // Reads that end inside a packet, of a few sizes.
  const phase = async () => {
    for (let i = 0; i < clients; i++) await conns[i].feed(traffic[i], 4096 + 1021 * (i % 13));
    await new Promise((r) => setTimeout(r, 0));
  };
  // A subscriber (QoS 0; 3.1.1 and 5.0) on a quarter of the topics, one each: two on a topic
  // compiled ingest more generally (S1 QoS 0 on Bun -5%); then nobody subscribed (ingest).
  const subscribers = conns.filter((_, i) => i % 40 === 0 || i % 40 === 23);
  const v = (n: number) => version(conns.indexOf(subscribers[n]));
  for (const [n, c] of subscribers.entries()) {
    const topicFilter = `warm/${n % 5}/#`;
    const sub = encode({ type: 8, packetId: 1, subscriptions: [{ topicFilter, qos: 0 }] }, v(n));
    await c.feed(sub, sub.length);
  }
  await phase();
  for (const [n, c] of subscribers.entries()) {
    const unsub = encode({ type: 10, packetId: 2, topicFilters: [`warm/${n % 5}/#`] }, v(n));
    await c.feed(unsub, unsub.length);
  }
  await phase();
  for (const [i, c] of conns.entries()) {
    const disconnect = encode({ type: 14 }, version(i));
    await c.feed(disconnect, disconnect.length);
  }
  await broker.close();
  const lingering = conns.filter((c) => c.callbacks !== undefined).length;
  return { published: broker.stats.received, delivered: broker.stats.sent, lingering };
}

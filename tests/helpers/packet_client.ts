/**
 * Feature tests drive the broker with bytes over an in-memory Conn pair:
 * no ports, no runtime, exact packets. `PacketClient` encodes what the test
 * sends and decodes what the broker answers.
 */
import type { Conn, StreamConn } from "../../src/broker/conn.ts";
import type { ConnectPacket, Packet, ProtocolVersion, QoS } from "../../src/mqtt/packet.ts";
import { encode } from "../../src/mqtt/encoder.ts";
import { PacketDecoder } from "../../src/mqtt/decoder.ts";
import { Broker } from "../../src/broker/broker.ts";
import type { BrokerOptions } from "../../src/broker/api.ts";

export function testBrokerOptions(over: Partial<BrokerOptions> = {}): BrokerOptions {
  return {
    brokerId: 1,
    connectTimeout: 5000,
    maximumPacketSize: 1024 * 1024,
    maxInflight: 100,
    maxQueuedMessages: 1000,
    ignoreClientSelfPub: false,
    shareTopic: { enable: true, strategy: "round" },
    ...over,
  };
}

/** Brokers created by tests, closed by `closeAll()` in an `after`/`afterEach`. */
const open: Broker[] = [];

export function newBroker(over: Partial<BrokerOptions> = {}): Broker {
  const b = new Broker(testBrokerOptions(over));
  open.push(b);
  return b;
}

export async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((b) => b.close()));
}

export type ConnMode = "callbacks-sync" | "callbacks-async" | "streams";

export class PacketClient {
  version: ProtocolVersion;
  closed = false;
  private readonly toServer: ReadableStreamDefaultController<Uint8Array>;
  private readonly decoder = new PacketDecoder();
  private readonly inbox: Packet[] = [];
  private waiters: (() => void)[] = [];
  private inputClosed = false;

  /**
   * `mode` picks how the connection reaches the broker: the callback path
   * (`start`/`write`, what TCP uses in production) with writes answered
   * synchronously (the default) or by a promise, or a Web-stream pair (what
   * embedders may hand over; the broker adapts it to the callback path).
   */
  constructor(broker: Broker, version: ProtocolVersion = 4, mode: ConnMode = "callbacks-sync") {
    this.version = version;
    this.decoder.version = version;
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const readable = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) });
    this.toServer = ctrl;
    const receive = (bytes: Uint8Array) => {
      // The broker reuses its output buffer: copy, the decoder keeps views.
      this.decoder.feed(bytes.slice(), (p) => this.inbox.push(p));
      this.wake();
    };
    const close = () => {
      if (this.closed) return;
      this.closed = true;
      this.endInput();
      this.wake();
    };
    const remoteAddr = "127.0.0.1:50000";
    if (mode === "streams") {
      const writable = new WritableStream<Uint8Array>({ write: receive });
      const streams: StreamConn = { readable, writable, remoteAddr, close };
      broker.handleConnection(streams);
      return;
    }
    const asyncWrites = mode === "callbacks-async";
    const conn: Conn = {
      remoteAddr,
      close,
      // Input pumped from the test's stream into `data`, honouring its backpressure promise.
      start: async (cb) => {
        const reader = readable.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const wait = cb.data(value);
          if (wait) await wait;
        }
        cb.end();
      },
      write: (whole, length = whole.length) => {
        if (this.closed) return Promise.reject(new Error("closed"));
        const bytes = whole.subarray(0, length);
        if (!asyncWrites) return receive(bytes);
        const copy = bytes.slice();
        return new Promise<void>((resolve) =>
          setTimeout(() => {
            receive(copy);
            resolve();
          }, 1)
        );
      },
    };
    broker.handleConnection(conn);
  }

  /** Connect and expect a successful CONNACK; returns it. */
  static async connect(
    broker: Broker,
    opts: Partial<ConnectPacket> = {},
    mode: ConnMode = "callbacks-sync",
  ): Promise<{ client: PacketClient; connack: Packet & { type: 2 } }> {
    const client = PacketClient.open(broker, opts, mode);
    const connack = await client.expect(2);
    return { client, connack };
  }

  /** Send a CONNECT (clean, no keep-alive, a random id unless given); the answer is the caller's. */
  static open(
    broker: Broker,
    opts: Partial<ConnectPacket> = {},
    mode: ConnMode = "callbacks-sync",
  ): PacketClient {
    const version = opts.protocolVersion ?? 4;
    const client = new PacketClient(broker, version, mode);
    client.send({
      type: 1,
      protocolName: version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: version,
      clean: true,
      keepAlive: 0,
      clientId: "c" + Math.random().toString(36).slice(2, 10),
      ...opts,
    });
    return client;
  }

  send(packet: Packet): void {
    this.sendRaw(encode(packet, this.version));
  }

  sendRaw(bytes: Uint8Array): void {
    if (!this.inputClosed) this.toServer.enqueue(bytes);
  }

  /** Next packet from the broker, or throw after `ms`. */
  async next(ms = 2000): Promise<Packet> {
    const deadline = Date.now() + ms;
    while (this.inbox.length === 0) {
      if (this.closed) throw new Error("connection closed while waiting for a packet");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${ms} ms`);
      await this.wait(left);
    }
    return this.inbox.shift()!;
  }

  /** Next packet, asserting its type. */
  async expect<T extends Packet["type"]>(
    type: T,
    ms = 2000,
  ): Promise<Extract<Packet, { type: T }>> {
    const p = await this.next(ms);
    if (p.type !== type) {
      throw new Error(`expected packet type ${type}, got ${JSON.stringify(p, replacer)}`);
    }
    return p as Extract<Packet, { type: T }>;
  }

  /** Assert that nothing arrives for `ms`. */
  async expectNothing(ms = 100): Promise<void> {
    if (this.inbox.length === 0) await this.wait(ms);
    if (this.inbox.length > 0) {
      throw new Error(`unexpected packet ${JSON.stringify(this.inbox[0], replacer)}`);
    }
  }

  /** Resolves when the broker has closed the connection (after any last packets). */
  async expectClosed(ms = 2000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${ms} ms`);
      await this.wait(left);
    }
  }

  /** Drop the network connection without DISCONNECT (the broker sees EOF). */
  drop(): void {
    this.endInput();
  }

  /** Packets received and not yet read. */
  pending(): Packet[] {
    return this.inbox;
  }

  private endInput(): void {
    if (this.inputClosed) return;
    this.inputClosed = true;
    try {
      this.toServer.close();
    } catch { /* already closed */ }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

function replacer(_k: string, v: unknown) {
  return v instanceof Uint8Array ? new TextDecoder().decode(v) : v;
}

export const text = (s: string) => new TextEncoder().encode(s);

/** A PUBLISH packet (retain and dup off) for `PacketClient.send`. */
export function publishPacket(
  topic: string,
  payload: string | Uint8Array,
  qos: QoS,
  packetId?: number,
) {
  return {
    type: 3 as const,
    topic,
    payload: typeof payload === "string" ? text(payload) : payload,
    qos,
    retain: false,
    dup: false,
    packetId,
  };
}
export const str = (b: Uint8Array) => new TextDecoder().decode(b);

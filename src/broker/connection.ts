import type { Conn } from "./conn.ts";
import type { Packet, ProtocolVersion } from "../mqtt/packet.ts";
import { PacketDecoder } from "../mqtt/decoder.ts";
import { ackSize, encodedLength, encodeInto, writeAck, writePublish } from "../mqtt/encoder.ts";
import { MqttSyntaxError } from "../mqtt/errors.ts";
import { EMPTY, giveBuffer, takeBuffer } from "./out_pool.ts";
import type { Session } from "./session.ts";
import type { ClientInfo } from "./hooks.ts";
import type { AuthState } from "./handlers/auth.ts";
import type { ReadRightsCache } from "./read_rights.ts";
import type { Properties, QoS } from "../mqtt/packet.ts";

/** What a Connection needs from the broker (keeps this file free of broker internals). */
export interface PacketSink {
  handlePacket(conn: Connection, packet: Packet): void | Promise<void>;
  connectionClosed(conn: Connection): void;
  log(line: string): void;
}

// Bits of Connection.state.
const CONNECTED = 1;
const CLOSING = 2;
const PUBLISH_WILL = 4;
const WRITING = 8;
const FLUSH_SCHEDULED = 16;
const FINISHED = 32;

/** Output above this many unsent bytes makes the connection "congested": QoS 0 is dropped. */
const CONGESTED_BYTES = 4 * 1024 * 1024;
/** How long close() waits for queued output (e.g. a DISCONNECT) before cutting the socket. */
const CLOSE_FLUSH_MS = 1000;

/**
 * One network connection: decodes incoming bytes into packets in order,
 * batches outgoing bytes into one write per tick, runs the keep-alive and
 * CONNECT timers. Protocol decisions belong to the handlers.
 */
export class Connection {
  // `declare`: set only in the constructor. A field also declared in the class
  // body is written twice, and JavaScriptCore sizes each object by the writes
  // (with the 5.0 limits moved to the extras: 160 -> 113 B by bun:jsc's estimate).
  declare readonly conn: Conn;
  declare readonly decoder: PacketDecoder;
  /** Protocol level; 4 until CONNECT says otherwise. */
  version: ProtocolVersion = 4;
  session: Session | undefined;
  /** Set at CONNECT: identity and rights, as hooks see them. */
  client: ClientInfo | undefined;
  /** The yes/no state below, as bits of one number: an idle connection stays small. */
  private state = PUBLISH_WILL;

  /** True once CONNACK (success) was sent. */
  get connected(): boolean {
    return (this.state & CONNECTED) !== 0;
  }
  set connected(v: boolean) {
    this.setState(CONNECTED, v);
  }
  /** No more input is processed once closing. */
  get closing(): boolean {
    return (this.state & CLOSING) !== 0;
  }
  set closing(v: boolean) {
    this.setState(CLOSING, v);
  }
  /** Publish the will when the connection ends (cleared by DISCONNECT) [MQTT-3.1.2-8]. */
  get publishWillOnClose(): boolean {
    return (this.state & PUBLISH_WILL) !== 0;
  }
  set publishWillOnClose(v: boolean) {
    this.setState(PUBLISH_WILL, v);
  }
  /** The transport has our output buffer (an asynchronous write is pending). */
  private get writing(): boolean {
    return (this.state & WRITING) !== 0;
  }
  private set writing(v: boolean) {
    this.setState(WRITING, v);
  }
  /** In this tick's list of connections to flush. */
  private get flushScheduled(): boolean {
    return (this.state & FLUSH_SCHEDULED) !== 0;
  }
  private set flushScheduled(v: boolean) {
    this.setState(FLUSH_SCHEDULED, v);
  }
  /** The broker was told this connection is gone. */
  private get finished(): boolean {
    return (this.state & FINISHED) !== 0;
  }
  private set finished(v: boolean) {
    this.setState(FINISHED, v);
  }
  private setState(bit: number, on: boolean): void {
    this.state = on ? this.state | bit : this.state & ~bit;
  }

  declare private readonly sink: PacketSink;
  /**
   * Output is encoded straight into a pooled buffer, written once per tick,
   * then returned to the pool: no per-packet allocation, no concatenation,
   * and no buffer held while idle.
   */
  private out: Uint8Array = EMPTY;
  private outBytes = 0;
  /**
   * Deadlines are checked by the broker's one sweep timer (a pending timer per
   * connection would cost more memory than the rest of an idle connection).
   */
  private lastActivity = Date.now();
  private keepAliveMs = 0;
  /** Until CONNECT: when the connection is dropped for not sending one. */
  declare private connectDeadline: number;
  /** Rarely used state, made on first use: an idle connection stays small. */
  private x: ConnectionExtras | undefined;

  constructor(sink: PacketSink, conn: Conn, maximumPacketSize: number, connectTimeoutMs: number) {
    this.sink = sink;
    this.conn = conn;
    this.decoder = new PacketDecoder({ maximumPacketSize, payloadRanges: true });
    // A client that never sends CONNECT must not hold a socket forever.
    this.connectDeadline = Date.now() + connectTimeoutMs;
  }

  get clientId(): string {
    return this.client?.clientId ?? "";
  }

  /** Enhanced authentication of this connection, when it used one. */
  get auth(): AuthState | undefined {
    return this.x?.auth;
  }
  set auth(v: AuthState | undefined) {
    (this.x ??= {}).auth = v;
  }

  /** 5.0 client → server topic aliases [MQTT-3.3.2-10]. */
  get topicAliases(): Map<number, string> | undefined {
    return this.x?.topicAliases;
  }
  set topicAliases(v: Map<number, string> | undefined) {
    (this.x ??= {}).topicAliases = v;
  }

  /** 5.0 server → client aliases given so far. */
  get outAliases(): Map<string, number> | undefined {
    return this.x?.outAliases;
  }
  set outAliases(v: Map<string, number> | undefined) {
    (this.x ??= {}).outAliases = v;
  }

  /**
   * 5.0 limits the client announced at CONNECT. Kept in the extras, and only
   * when one differs from the default: most clients announce none.
   */
  setClientLimits(
    receiveMaximum: number,
    maximumPacketSize: number,
    outAliasMaximum: number,
  ): void {
    if (receiveMaximum === 65535 && maximumPacketSize === 0 && outAliasMaximum === 0) return;
    const x = this.x ??= {};
    x.receiveMaximum = receiveMaximum;
    x.maximumPacketSize = maximumPacketSize;
    x.outAliasMaximum = outAliasMaximum;
  }
  get clientReceiveMaximum(): number {
    return this.x?.receiveMaximum ?? 65535;
  }
  /** 0: no limit. */
  get clientMaximumPacketSize(): number {
    return this.x?.maximumPacketSize ?? 0;
  }
  /** 5.0 server → client topic aliases, up to the client's Topic Alias Maximum. */
  get outAliasMaximum(): number {
    return this.x?.outAliasMaximum ?? 0;
  }

  /** Read rights answered for this connection's client (see read_rights.ts); reset when they change. */
  get readRights(): ReadRightsCache | undefined {
    return this.x?.readRights;
  }
  set readRights(v: ReadRightsCache | undefined) {
    if (v || this.x) (this.x ??= {}).readRights = v;
  }

  get remoteAddr(): string {
    return this.conn.remoteAddr;
  }

  start(): void {
    this.conn.start(this); // data() and end() below: no closures per connection
  }

  /** Encode and queue one packet for this connection's protocol level. */
  send(packet: Packet): void {
    if (this.finished) return;
    const n = encodedLength(packet, this.version);
    this.reserve(n);
    this.outBytes = encodeInto(packet, this.version, this.out, this.outBytes);
    this.scheduleFlush();
  }

  /**
   * Queue PUBACK/PUBREC/PUBREL/PUBCOMP without building a packet object (one
   * or two per message on the QoS 1/2 paths). `reasonCode` only goes to 5.0.
   */
  sendAck(type: 4 | 5 | 6 | 7, packetId: number, reasonCode = 0): void {
    if (this.finished) return;
    this.reserve(ackSize(this.version, reasonCode));
    this.outBytes = writeAck(this.out, this.outBytes, this.version, type, packetId, reasonCode);
    this.scheduleFlush();
  }

  /**
   * Queue a PUBLISH from its fields; `size` is publishSize() of them, which
   * the caller checked. The payload is source[payloadStart, +payloadLength).
   */
  sendPublish(
    size: number,
    topic: string,
    topicLength: number,
    source: Uint8Array,
    payloadStart: number,
    payloadLength: number,
    qos: QoS,
    retain: boolean,
    dup: boolean,
    packetId: number,
    properties: Properties | undefined,
  ): void {
    if (this.finished) return;
    this.reserve(size);
    this.outBytes = writePublish(
      this.out,
      this.outBytes,
      this.version,
      topic,
      topicLength,
      source,
      payloadStart,
      payloadLength,
      qos,
      retain,
      dup,
      packetId,
      properties,
    );
    this.scheduleFlush();
  }

  /** Queue already encoded bytes (a PUBLISH shared by many subscribers). */
  sendBytes(bytes: Uint8Array): void {
    if (this.finished) return;
    this.reserve(bytes.length);
    this.out.set(bytes, this.outBytes);
    this.outBytes += bytes.length;
    this.scheduleFlush();
  }

  private reserve(n: number): void {
    const need = this.outBytes + n;
    if (need <= this.out.length) return;
    const grown = takeBuffer(Math.max(need, this.out.length * 2));
    grown.set(this.out.subarray(0, this.outBytes));
    giveBuffer(this.out);
    this.out = grown;
  }

  private scheduleFlush(): void {
    // One write per tick: everything handled in this turn goes out together.
    if (!this.flushScheduled && !this.writing) {
      this.flushScheduled = true;
      dirty[dirtyCount++] = this;
      if (dirtyCount === 1) queueMicrotask(flushDirty);
    }
  }

  /** Output encoded but not yet handed to the transport, bytes. */
  get unsentBytes(): number {
    return this.outBytes;
  }

  /** Call `f` once everything queued so far was written (or the write failed). */
  afterOutput(f: () => void): void {
    if (!this.writing && this.outBytes === 0) return f();
    ((this.x ??= {}).drained ??= []).push(f);
  }

  /** A slow reader: QoS 0 messages to it are dropped rather than buffered without bound. */
  get congested(): boolean {
    return this.outBytes > CONGESTED_BYTES;
  }

  /** Watch keep-alive from now on: 1.5 × the client's interval [MQTT-3.1.2-24]. */
  setKeepAlive(seconds: number): void {
    this.keepAliveMs = seconds * 1500;
  }

  /** Called by the broker's sweep: enforce the CONNECT and keep-alive deadlines. */
  checkDeadlines(now: number): void {
    if (this.closing) return;
    if (!this.connected) {
      if (now >= this.connectDeadline) this.close();
    } else if (this.keepAliveMs > 0 && now - this.lastActivity >= this.keepAliveMs) {
      this.close(0x8d); // Keep Alive timeout
    }
  }

  /**
   * Stop processing input and close. With a 5.0 reason code the server sends
   * DISCONNECT first [MQTT-4.13.2-1]; 3.x has no server DISCONNECT.
   */
  close(reasonCode?: number, reasonString?: string, properties?: Properties): void {
    if (this.closing) return;
    this.closing = true;
    if (reasonCode !== undefined && this.version === 5 && this.connected) {
      const props = reasonString ? { ...properties, reasonString } : properties;
      this.send({ type: 14, reasonCode, properties: props });
    }
    this.whenDrained(CLOSE_FLUSH_MS).then(() => this.conn.close());
  }

  /**
   * Decode one chunk and handle its packets in order. A handler that must
   * wait (authentication, a congested subscriber) returns a promise; the
   * remaining packets wait with it and the caller stops reading meanwhile.
   */
  data(chunk: Uint8Array): void | Promise<void> {
    if (this.closing) return;
    this.lastActivity = Date.now();
    // Decoding and handling one chunk is synchronous, so one scratch array
    // serves every connection; packets left for later are copied out.
    scratchCount = 0;
    let n = 0, i = 0;
    try {
      this.decoder.feed(chunk, collect);
      n = scratchCount;
      for (; i < n; i++) {
        const packet = scratch[i]!;
        scratch[i] = undefined; // hold no packet (nor its chunk) past this call
        if (this.closing) return;
        const pending = this.sink.handlePacket(this, packet);
        if (pending) return this.continueAfter(pending, takeScratch(i + 1, n));
      }
    } catch (err) {
      this.fail(err);
    } finally {
      // Also after a decode error, which leaves the packets before it collected.
      for (const end = Math.max(n, scratchCount); i < end; i++) scratch[i] = undefined;
    }
  }

  private async continueAfter(pending: Promise<void>, rest: Packet[]): Promise<void> {
    try {
      await pending;
      for (const p of rest) {
        if (this.closing) return;
        const next = this.sink.handlePacket(this, p);
        if (next) await next;
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (err instanceof MqttSyntaxError) {
      this.sink.log(`closing ${this.describe()}: ${err.message}`);
      this.close(err.reasonCode, err.message);
    } else if (!this.closing) {
      // A socket error (reset) or a bug in a handler: this connection only.
      this.sink.log(`closing ${this.describe()}: ${String(err)}`);
      this.close(0x80);
    }
  }

  /** The input ended (peer closed, or the read failed). */
  end(): void {
    if (!this.closing) this.close();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.sink.connectionClosed(this);
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.writing || this.outBytes === 0) return;
    const full = this.out;
    const length = this.outBytes;
    // The transport owns this buffer until the write settles.
    this.out = EMPTY;
    this.outBytes = 0;
    this.writing = true;
    let written: void | Promise<void>;
    try {
      written = this.conn.write(full, length);
    } catch (e) {
      written = Promise.reject(e);
    }
    if (!written) {
      // Handed to the OS synchronously: the buffer is free again at once.
      this.writing = false;
      giveBuffer(full);
      if (this.outBytes > 0) this.flush();
      else this.resolveDrained();
      return;
    }
    written.then(
      () => {
        this.writing = false;
        giveBuffer(full);
        if (this.outBytes > 0) this.flush();
        else this.resolveDrained();
      },
      () => {
        // The peer is gone: drop output, end the connection.
        this.writing = false;
        this.outBytes = 0;
        this.resolveDrained();
        this.closing = true;
        this.conn.close();
      },
    );
  }

  private whenDrained(limitMs: number): Promise<void> {
    if (!this.writing && this.outBytes === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, limitMs);
      ((this.x ??= {}).drained ??= []).push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private resolveDrained(): void {
    const waiting = this.x?.drained;
    if (!waiting) return;
    this.x!.drained = undefined;
    for (const f of waiting) f();
  }

  describe(): string {
    return this.clientId ? `client ${this.clientId} (${this.remoteAddr})` : this.remoteAddr;
  }
}

/** Connections with output waiting for this tick's flush. */
// Both scratch lists below are used by count and never truncated: setting an
// array's length to 0 drops its backing store, and the next push allocates a
// new one (measured: ~300 B per message on the QoS 1 path).
const dirty: (Connection | undefined)[] = [];
let dirtyCount = 0;

function flushDirty(): void {
  // A flush may add more connections (none today), so walk by index.
  for (let i = 0; i < dirtyCount; i++) {
    const c = dirty[i]!;
    dirty[i] = undefined;
    c.flush();
  }
  dirtyCount = 0;
}

const scratch: (Packet | undefined)[] = [];
let scratchCount = 0;
function collect(p: Packet): void {
  scratch[scratchCount++] = p;
}
/** Packets from..to of the scratch list, moved out of it. */
function takeScratch(from: number, to: number): Packet[] {
  const rest: Packet[] = [];
  for (let i = from; i < to; i++) {
    rest.push(scratch[i]!);
    scratch[i] = undefined;
  }
  return rest;
}

interface ConnectionExtras {
  receiveMaximum?: number;
  maximumPacketSize?: number;
  outAliasMaximum?: number;
  auth?: AuthState;
  topicAliases?: Map<number, string>;
  outAliases?: Map<string, number>;
  readRights?: ReadRightsCache;
  drained?: (() => void)[];
}

import type { Conn } from "./conn.ts";
import { PacketDecoder } from "../mqtt/decoder.ts";
import { ackSize, encodedLength, encodeInto, writeAck, writePublish } from "../mqtt/encoder.ts";
import { MqttSyntaxError } from "../mqtt/errors.ts";
import { EMPTY, giveBuffer, takeBuffer } from "./out_pool.ts";
import type { Session } from "./session.ts";
import type { ClientInfo, PeerCertificate } from "./hooks.ts";
import type { Packet, Properties, QoS } from "../mqtt/packet.ts";
import { fitToClient } from "./client_maximum.ts";
import { ConnectionState } from "./connection_state.ts";
export type { AuthState } from "./connection_state.ts";
import { reasonName } from "../mqtt/reason_codes.ts";
import { escapeForLog } from "../log/escape.ts";
import type { BrokerStats } from "./stats.ts";
import * as scratch from "./packet_scratch.ts";
import { STILL_WAITING, turnBudget, type TurnTaker, waitForTurn } from "./input_turns.ts";

/** What a Connection needs from the broker (keeps this file free of broker internals). */
export interface PacketSink {
  /** `type`: the packet's type, from its fixed header (packet_scratch.ts typeAt). */
  handlePacket(conn: Connection, packet: Packet, type: number): void | Promise<void>;
  connectionClosed(conn: Connection): void;
  log(line: string): void;
  /** Counters (bytes in and out, deliveries, drops): plain fields, incremented in place. */
  readonly stats: BrokerStats;
}

/** Output above this many unsent bytes makes the connection "congested": QoS 0 is dropped. */
const CONGESTED_BYTES = 4 * 1024 * 1024;
/**
 * Input is not read while more than this much output waits for the peer: a client that sends
 * PINGREQs (or QoS 1 PUBLISHes) and never reads the replies costs at most this much memory.
 */
export const READ_PAUSE_BYTES = 1024 * 1024;
/** Output held back while input waits for a later turn, at most (see flush()). */
const HOLD_OUTPUT_BYTES = 64 * 1024;
/** How long close() waits for queued output (e.g. a DISCONNECT) before cutting the socket. */
const CLOSE_FLUSH_MS = 1000;
/** After half-closing, how long input is drained before the socket is closed. */
const LINGER_MS = 2000;

/**
 * One network connection: decodes incoming bytes into packets in order,
 * batches outgoing bytes into one write per tick, runs the keep-alive and
 * CONNECT timers. Protocol decisions belong to the handlers.
 */
export class Connection extends ConnectionState implements TurnTaker, ClientInfo {
  // `declare`: set only in the constructor. A field also declared in the class
  // body is written twice, and JavaScriptCore sizes each object by the writes
  // (with the 5.0 limits moved to the extras: 160 -> 113 B by bun:jsc's estimate).
  declare readonly conn: Conn;
  declare readonly decoder: PacketDecoder;
  session: Session | undefined;
  /** The broker's counters. */
  get stats(): BrokerStats {
    return this.sink.stats;
  }

  declare private readonly sink: PacketSink;
  /** Output, encoded into a pooled buffer written once per tick and then returned to the pool:
   * no per-packet allocation, no concatenation, no buffer held while idle. */
  private out: Uint8Array = EMPTY;
  private outBytes = 0;
  /** Bytes of the write the transport still holds (0 when none is pending). */
  private writeBytes = 0;
  /**
   * Checked by the broker's one sweep timer (a timer per connection costs more memory than an
   * idle connection's rest). Until CONNECT is accepted: when the connection opened, which its
   * CONNECT deadline counts from; then the last input, for the keep-alive. One field for both.
   */
  private lastActivity = Date.now();
  private keepAliveMs = 0;

  constructor(sink: PacketSink, conn: Conn, maximumPacketSize: number) {
    super();
    this.sink = sink;
    this.conn = conn;
    this.decoder = new PacketDecoder({ maximumPacketSize, payloadRanges: true });
  }

  /**
   * Set at CONNECT: identity and rights, as hooks see them. The connection is
   * its own ClientInfo (clientId, username, protocolVersion, remoteAddr,
   * certificate, rights): a second object cost 56 B per client on V8.
   */
  get client(): ClientInfo | undefined {
    return this.clientId === "" ? undefined : this;
  }

  /** ClientInfo: the TLS client certificate, when the transport verified one (or a hook set). */
  get certificate(): PeerCertificate | undefined {
    return this.x?.certificate ?? this.conn.peerCertificate;
  }
  set certificate(v: PeerCertificate | undefined) {
    (this.x ??= {}).certificate = v;
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
    let n = encodedLength(packet, this.version);
    const max = this.clientMaximumPacketSize; // a 5.0 client's limit [MQTT-3.1.2-24]; 0: none
    if (max !== 0 && n > max) {
      const fit = fitToClient(packet, max);
      if (!fit) return this.drop(`a packet of ${n} bytes exceeds the client's maximum ${max}`);
      n = encodedLength(packet = fit, this.version);
    }
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

  /** The keep-alive in force, seconds (0: none). */
  get keepAlive(): number {
    return this.keepAliveMs / 1500;
  }

  /** Output the peer has not taken yet: queued here, and in the transport's pending write. */
  get pendingOutputBytes(): number {
    return this.outBytes + this.writeBytes;
  }

  /** Watch keep-alive from now on: 1.5 × the client's interval [MQTT-3.1.2-24]. */
  setKeepAlive(seconds: number): void {
    this.keepAliveMs = seconds * 1500;
    this.lastActivity = Date.now();
  }

  /**
   * Called by the broker's sweep: enforce the CONNECT and keep-alive
   * deadlines. A client that never sends CONNECT must not hold a socket
   * forever: one still without it that opened before `openedBy` is dropped.
   */
  checkDeadlines(now: number, openedBy: number): void {
    if (this.closing) return;
    if (!this.connected) {
      if (this.lastActivity <= openedBy) this.drop("no CONNECT in time");
    } else if (this.keepAliveMs > 0 && now - this.lastActivity >= this.keepAliveMs) {
      this.close(0x8d); // Keep Alive timeout
    }
  }

  /**
   * Stop processing input and close. With a 5.0 reason code the server sends
   * DISCONNECT first [MQTT-4.13.2-1]; 3.x has no server DISCONNECT. The
   * broker's reason is logged (`why`, else the reason code); a close with
   * neither is the client's doing (DISCONNECT, or its socket ended).
   */
  close(reasonCode?: number, reasonString?: string, properties?: Properties, why?: string): void {
    if (this.closing) return;
    this.closing = true;
    if (why === undefined && reasonCode !== undefined) {
      why = reasonString ? `${reasonName(reasonCode)}: ${reasonString}` : reasonName(reasonCode);
    }
    if (why !== undefined) this.sink.log(`closing ${this.describe()}: ${escapeForLog(why)}`);
    if (reasonCode !== undefined && this.version === 5 && this.connected) {
      const props = reasonString ? { ...properties, reasonString } : properties;
      this.send({ type: 14, reasonCode, properties: props });
    }
    this.whenDrained(CLOSE_FLUSH_MS).then(() => this.shutdownTransport());
  }

  /** Close without a DISCONNECT, logging why. */
  drop(why: string): void {
    this.close(undefined, undefined, undefined, why);
  }

  /**
   * Half-close, then drain the input briefly before closing: closing a socket
   * with unread input resets it, and a reset can discard our last packets
   * (a DISCONNECT, a refusing CONNACK) before the client reads them.
   */
  private shutdownTransport(): void {
    const conn = this.conn;
    const inputEnded = this.finished;
    // The broker is done with this client now (session detached, API and $SYS no longer
    // list it); what follows only lets the socket drain.
    this.finish();
    if (inputEnded || !conn.endWrite) return conn.close();
    this.lingering = true;
    try {
      conn.endWrite();
    } catch {
      return conn.close();
    }
    (this.x ??= {}).linger = setTimeout(() => conn.close(), LINGER_MS);
  }

  /**
   * Decode one chunk and handle its packets in order. A handler that must
   * wait (authentication, a congested subscriber) returns a promise; the
   * remaining packets wait with it and the caller stops reading meanwhile.
   * So does input past this turn's budget (turnBudget, input_turns.ts).
   */
  data(chunk: Uint8Array): void | Promise<void> {
    if (this.closing) return;
    const now = Date.now();
    // Before CONNECT it keeps the open time (the CONNECT deadline's start). Written either way:
    // JavaScriptCore compiles this during a wave of CONNECTs and would discard code for a store
    // only connected clients reach at their first PUBLISH.
    this.lastActivity = this.connected ? now : this.lastActivity;
    this.sink.stats.networkIn += chunk.length;
    return this.handleInput(chunk, 0, now);
  }

  private handleInput(chunk: Uint8Array, start: number, now = Date.now()): void | Promise<void> {
    scratch.startScratch(); // one list for every connection (packet_scratch.ts)
    let n = 0, i = 0;
    try {
      const budget = turnBudget(now);
      const stop = this.decoder.feed(
        chunk,
        scratch.collect,
        start,
        budget.bytes,
        budget.packets,
        budget.maxPackets,
      );
      n = scratch.scratchCount();
      for (; i < n; i++) {
        const packet = scratch.takeAt(i);
        if (this.closing) return;
        const pending = this.sink.handlePacket(this, packet, scratch.typeAt(i));
        if (pending) {
          return this.continueAfter(pending, scratch.takeRange(i + 1, n), chunk, stop);
        }
      }
      if (stop < chunk.length) return this.leaveForLater(chunk, stop);
      // The peer does not take our replies: stop reading it until it does.
      if (this.outBytes + this.writeBytes > READ_PAUSE_BYTES) return this.outputTaken();
    } catch (err) {
      this.fail(err);
    } finally {
      scratch.clearRange(i, Math.max(n, scratch.scratchCount()));
    }
  }

  /** Settles once every queued output byte was handed to the OS (or the connection ended). */
  private outputTaken(): Promise<void> {
    return new Promise((resolve) => ((this.x ??= {}).drained ??= []).push(resolve));
  }

  private async continueAfter(
    pending: Promise<void>,
    rest: Packet[],
    chunk: Uint8Array,
    stop: number,
  ): Promise<void> {
    try {
      await pending;
      for (const p of rest) {
        if (this.closing) return;
        const next = this.sink.handlePacket(this, p, p.type);
        if (next) await next;
      }
      if (stop < chunk.length && !this.closing) await this.handleInput(chunk, stop);
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * The budget of this turn is spent: keep chunk[pos..] for a later turn.
   * The promise (one per wait, not per chunk) settles when it was handled.
   */
  private leaveForLater(chunk: Uint8Array, pos: number): Promise<void> {
    const x = this.x ??= {};
    x.rest = chunk;
    x.restPos = pos;
    waitForTurn(this);
    // Called from resumeInput: the transport already waits on the first promise.
    if (x.wake) return STILL_WAITING;
    return new Promise((resolve) => x.wake = resolve);
  }

  /** This connection's next turn: handle more of the input left over. */
  resumeInput(): void {
    const x = this.x!;
    const chunk = x.rest!;
    x.rest = undefined;
    const r = this.closing ? undefined : this.handleInput(chunk, x.restPos!);
    if (!x.rest && this.outBytes > 0) this.scheduleFlush(); // what flush() held back
    if (r === STILL_WAITING) return;
    const wake = x.wake!;
    x.wake = undefined;
    if (r) r.then(wake, wake);
    else wake();
  }

  private fail(err: unknown): void {
    if (err instanceof MqttSyntaxError) {
      this.close(err.reasonCode, err.message);
    } else if (!this.closing) {
      // A socket error (reset) or a bug in a handler: this connection only.
      this.close(0x80, undefined, undefined, String(err));
    }
  }

  /** The input ended (peer closed, or the read failed). */
  end(why?: string): void {
    if (!this.closing) this.close(undefined, undefined, undefined, why);
    else if (this.lingering) {
      clearTimeout(this.x!.linger);
      this.conn.close();
    }
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
    // Input left for a later turn: its replies go out with the rest's, in one
    // write (a write per turn's budget costs more than the budget saves).
    if (this.x?.rest && this.outBytes < HOLD_OUTPUT_BYTES) return;
    const full = this.out;
    const length = this.outBytes;
    // The transport owns this buffer until the write settles.
    this.out = EMPTY;
    this.outBytes = 0;
    this.writing = true;
    this.sink.stats.networkOut += length;
    let written: void | Promise<void>;
    try {
      written = this.conn.write(full, length);
    } catch (e) {
      written = Promise.reject(e);
    }
    if (written) this.writeBytes = length;
    else {
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
        this.writeBytes = 0;
        giveBuffer(full);
        if (this.outBytes > 0) this.flush();
        else this.resolveDrained();
      },
      () => {
        // The peer is gone: drop output, end the connection.
        if (!this.closing) this.sink.log(`closing ${this.describe()}: the write failed`);
        this.writing = false;
        this.writeBytes = 0;
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
    const id = this.clientId;
    return id ? `client ${escapeForLog(id)} (${this.remoteAddr})` : this.remoteAddr;
  }
}

/** Connections with output waiting for this tick's flush (by count, never truncated: see
 * packet_scratch.ts). */
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

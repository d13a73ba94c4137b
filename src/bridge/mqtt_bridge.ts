/**
 * One bridge to an upstream MQTT broker, with MQTT.js as the client.
 *
 * Out: the plugin hands every local message an out rule takes to `enqueue`;
 * it goes into the bridge's `BridgeQueue` (before the local publisher gets its
 * PUBACK), and a pump sends the queue in order, up to `window` messages
 * unacknowledged at once, removing each when the upstream acknowledged it.
 * While the upstream is unreachable the queue just grows (up to its bound);
 * after a reconnect everything still queued is sent again from the oldest:
 * QoS 2 messages that were in flight under the same packet ids first
 * (mqtt_outgoing.ts: exactly once), the rest as new (QoS 1: at least once).
 *
 * In: the bridge subscribes upstream (5.0: No Local, so what we send up never
 * comes back) and publishes what arrives through its own LocalClient, whose
 * client id marks the message as the bridge's: the plugin never sends it back
 * out over this bridge. The upstream's PUBACK/PUBCOMP waits for the local
 * publish to be kept, stored for the persistent sessions it went to (MQTT.js
 * `handleMessage`, LocalClient.publish).
 *
 * Reconnects use a fresh MQTT.js client each time (its own reconnect has no
 * backoff) after an exponential delay with jitter.
 */
import { Buffer } from "node:buffer";
import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from "mqtt";
import type { QoS } from "../mqtt/packet.ts";
import type { BatchRider } from "../store/types.ts";
import type { BridgeQueue, OutboundMessage, QueuedOutbound } from "./mqtt_queue.ts";
import type { BridgeTopics } from "./mqtt_topics.ts";
import { redactUrl } from "../log/redact.ts";
import { escapeForLog } from "../log/escape.ts";
import { BridgeOutgoingStore } from "./mqtt_outgoing.ts";
import { BridgeIncomingStore, packetOf } from "./mqtt_incoming.ts";

export type ConnectFn = (opts: IClientOptions) => MqttClient;

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };

/** mqtt://, mqtts://, ws://, wss:// → MQTT.js options (WHATWG URL: MQTT.js would use url.parse). */
export function urlOptions(url: string): IClientOptions {
  const u = new URL(url);
  const protocol = u.protocol.slice(0, -1) as "mqtt" | "mqtts" | "ws" | "wss";
  const ws = protocol === "ws" || protocol === "wss";
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    protocol,
    host,
    hostname: host,
    port: u.port ? Number(u.port) : DEFAULT_PORTS[protocol],
    path: ws ? u.pathname + u.search : undefined,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

export interface MqttBridgeOptions {
  name: string;
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** PEM text (already read from the configured files). */
  ca?: string;
  cert?: string;
  key?: string;
  protocolVersion: 4 | 5;
  /** Seconds. */
  keepalive: number;
  cleanStart: boolean;
  topics: BridgeTopics;
  queue: BridgeQueue;
  /** Bound of the queue (for the log line and the drop state). */
  queueMax: number;
  /** ms before the first reconnect; doubles per failed attempt up to `reconnectMaxDelay`. */
  reconnectDelay: number;
  reconnectMaxDelay: number;
  /** Publish an upstream message locally (through the bridge's LocalClient), `rider` with it. */
  publishLocal(
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    retain: boolean,
    rider?: BatchRider,
  ): unknown;
  connect: ConnectFn;
  log(line: string): void;
  /** Called when connected, or dropping, changed state. */
  onStateChange?(): void;
}

/** Unacknowledged messages sent upstream at once (lowered to the upstream's Receive Maximum). */
const WINDOW = 256;
/** How long an upstream 5.0 session lasts after the bridge went away, when clean-start is false. */
const SESSION_EXPIRY_S = 7 * 24 * 3600;
/** At most one log line about refused messages per this many ms. */
const REFUSED_LOG_MS = 10_000;

export class MqttBridge {
  connected = false;
  /** Messages the upstream acknowledged (QoS 1/2) or that were written (QoS 0). */
  sent = 0;
  /** Messages dropped because the queue was full (oldest first). */
  dropped = 0;
  /** Messages that came in from the upstream and were published locally. */
  received = 0;
  /**
   * Messages the upstream refused (5.0 PUBACK/PUBREC/PUBCOMP reason code >= 0x80,
   * e.g. its ACL denies the topic): removed from the queue, never sent again.
   */
  refused = 0;
  /** Refusals not yet logged, and when the last refusal line was written (rate limit). */
  private refusedUnlogged = 0;
  private refusedLoggedAt = 0;
  private refusedTimer: ReturnType<typeof setTimeout> | undefined;
  private dropping = false;
  private client: MqttClient | undefined;
  /** Bumped per connection: acknowledgements of an older one are ignored. */
  private generation = 0;
  /** Highest seq sent on this connection; the pump goes on after it. */
  private cursor = 0;
  private inflight = 0;
  private window = WINDOW;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private pumping = false;
  private pumpAgain = false;
  private lastError = "";
  private lastRefusal = "";
  private everConnected = false;
  private subscribedUp = false; // its retained messages came in this process: not per reconnect
  private queueFailing = false;
  private pumpRetry: ReturnType<typeof setTimeout> | undefined;

  /**
   * Packet ids of the messages in flight upstream, kept in the queue across connections and
   * restarts (exactly-once QoS 2). Not with clean-start: the upstream forgets them anyway.
   */
  private readonly outgoing: BridgeOutgoingStore | undefined;
  /** Upstream QoS 2 messages between PUBREC and PUBREL, kept likewise (mqtt_incoming.ts). */
  private readonly incomingStore: BridgeIncomingStore | undefined;

  constructor(readonly options: MqttBridgeOptions) {
    if (!options.cleanStart) {
      this.outgoing = new BridgeOutgoingStore(options.queue);
      this.incomingStore = new BridgeIncomingStore(options.queue);
    }
  }

  get name(): string {
    return this.options.name;
  }

  get queued(): number {
    return this.options.queue.size();
  }

  start(): void {
    if (!this.outgoing) return this.connectNow();
    Promise.all([this.outgoing.load(), this.incomingStore?.load()]).catch((e) => {
      // Then what was in flight is sent again under new packet ids: at least once.
      this.options.log(`bridge ${this.name}: reading the in-flight packet ids failed: ${e}`);
    }).then(() => this.connectNow());
  }

  /** Queue a message for the upstream; resolves once it is in the queue (durable queues). */
  enqueue(message: OutboundMessage): void | Promise<void> {
    const r = this.options.queue.push(message);
    if (r instanceof Promise) return r.then((dropped) => this.pushed(dropped));
    this.pushed(r);
  }

  private pushed(dropped: number): void {
    if (dropped > 0) {
      this.dropped += dropped;
      if (!this.dropping) {
        this.dropping = true;
        this.options.log(
          `bridge ${this.name}: queue full (queue-max ${this.options.queueMax}), ` +
            `dropping the oldest messages`,
        );
        this.options.onStateChange?.();
      }
    }
    if (this.connected && !this.pumping) void this.pump();
    else if (this.pumping) this.pumpAgain = true;
  }

  private connectNow(): void {
    if (this.stopped) return;
    const o = this.options;
    const gen = ++this.generation;
    const v5 = o.protocolVersion === 5;
    const fromUrl = urlOptions(o.url);
    const client = o.connect({
      ...fromUrl,
      clientId: o.clientId,
      username: o.username ?? fromUrl.username,
      password: o.password ?? fromUrl.password,
      protocolVersion: v5 ? 5 : 4,
      keepalive: o.keepalive,
      clean: o.cleanStart,
      properties: v5 && !o.cleanStart ? { sessionExpiryInterval: SESSION_EXPIRY_S } : undefined,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      queueQoSZero: false,
      resubscribe: false,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      rejectUnauthorized: true,
      manualConnect: true, // connect() below, once the CONNECT writer is set up
      // MQTT.js sends what this store holds first on every connection (same packet ids).
      outgoingStore: this.outgoing as unknown as IClientOptions["outgoingStore"],
      incomingStore: this.incomingStore as unknown as IClientOptions["incomingStore"],
    });
    if (!v5) setBridgeBit(client);
    this.client = client;
    client.handleMessage = (packet, done) => this.incoming(packet, done);
    // Before MQTT.js handles the CONNACK (and sends the store's packets again).
    client.on("packetreceive", (p) => {
      if (p.cmd === "connack" && !p.sessionPresent && gen === this.generation) {
        this.outgoing?.sessionLost();
        // No PUBREL will come for what we acknowledged with PUBREC: it is ours, publish it now.
        for (const r of this.incomingStore?.all() ?? []) {
          this.incoming(packetOf(r) as unknown as IPublishPacket, () => {});
        }
      }
    });
    client.on("connect", (connack) => {
      if (gen === this.generation) this.up(client, connack);
    });
    client.on("error", (e) => {
      if (gen === this.generation) this.lastError = e.message;
    });
    client.on("close", () => {
      if (gen === this.generation) this.down(client);
    });
    client.connect();
  }

  private up(client: MqttClient, connack: IConnackPacket): void {
    const o = this.options;
    this.connected = true;
    this.attempts = 0;
    this.cursor = 0;
    this.inflight = 0;
    this.window = Math.min(WINDOW, connack.properties?.receiveMaximum ?? WINDOW);
    o.log(
      `bridge ${this.name}: connected to ${redactUrl(o.url)}` +
        (this.queued > 0 ? `, sending ${this.queued} queued messages` : ""),
    );
    this.everConnected = true;
    const subs = o.topics.subscriptions();
    if (subs.length > 0) {
      const map: Record<string, { qos: QoS; nl?: boolean; rap?: boolean; rh?: number }> = {};
      for (const s of subs) {
        // 5.0: retained messages once per process, then only for new subscriptions [MQTT-3.3.1-11]
        map[s.filter] = o.protocolVersion === 5
          ? { qos: s.qos, nl: true, rap: true, rh: this.subscribedUp ? 1 : 0 }
          : { qos: s.qos };
      }
      client.subscribe(map, (err) => {
        if (err) o.log(`bridge ${this.name}: upstream subscribe failed: ${err.message}`);
        else this.subscribedUp = true;
      });
    }
    o.onStateChange?.();
    void this.pump();
  }

  private down(client: MqttClient): void {
    client.end(true);
    this.generation++; // late acknowledgements of this connection are ignored
    const wasConnected = this.connected;
    this.connected = false;
    this.inflight = 0;
    if (this.stopped) return;
    if (wasConnected || !this.everConnected && this.attempts === 0) {
      this.options.log(
        `bridge ${this.name}: upstream ${redactUrl(this.options.url)} unreachable` +
          (this.lastError ? ` (${this.lastError})` : "") +
          `; queueing up to ${this.options.queueMax} messages, reconnecting with backoff`,
      );
      this.options.onStateChange?.();
    }
    const o = this.options;
    const base = Math.min(o.reconnectMaxDelay, o.reconnectDelay * 2 ** Math.min(this.attempts, 20));
    this.attempts++;
    // Equal jitter: half the delay fixed, half random, so many gateways don't retry in step.
    const delay = base / 2 + Math.random() * base / 2;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connectNow();
    }, delay);
  }

  /** Send what is queued after the cursor while the window has room. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (this.connected && this.inflight < this.window) {
          const gen = this.generation;
          const got = this.options.queue.peek(this.cursor, this.window - this.inflight);
          const batch = got instanceof Promise ? await got : got;
          if (gen !== this.generation || batch.length === 0) break;
          for (const m of batch) {
            // In flight under a packet id: MQTT.js sends it again itself.
            if (this.outgoing?.has(m.seq)) this.cursor = m.seq;
            else this.send(m, gen);
          }
        }
      } while (this.pumpAgain && this.connected);
      if (this.queueFailing) this.queueTrouble();
    } catch (e) {
      // The store is unreachable (Redis down): try again shortly, log once per state change.
      this.queueTrouble(e);
      if (!this.stopped) {
        this.pumpRetry ??= setTimeout(() => {
          this.pumpRetry = undefined;
          void this.pump();
        }, 1_000);
      }
    } finally {
      this.pumping = false;
    }
  }

  private send(m: QueuedOutbound, gen: number): void {
    this.cursor = m.seq;
    this.inflight++;
    const p = m.payload;
    // MQTT.js stores the packet in `outgoing` synchronously inside publish(): tell it whose it is.
    if (this.outgoing) this.outgoing.sending = m.seq;
    this.client!.publish(
      m.topic,
      Buffer.from(p.buffer, p.byteOffset, p.byteLength),
      { qos: m.qos, retain: m.retain },
      (err) => {
        if (gen !== this.generation) return; // the connection went: sent again later
        const code = (err as { code?: unknown } | undefined)?.code;
        // A refusal frees its window slot and goes (MQTT.js already freed the packet id).
        if (typeof code === "number" && code >= 0x80) return this.refusedBy(m, code, err!.message);
        if (err) return;
        this.acknowledged(m.seq);
      },
    );
    if (this.outgoing) this.outgoing.sending = undefined;
  }

  private acknowledged(seq: number): void {
    this.sent++;
    this.settled(seq);
  }

  /**
   * The upstream will never take this message: sending it again gets the same
   * answer, and keeping it would hold a slot of the window for good (after the
   * upstream's Receive Maximum of them the bridge would send nothing more).
   */
  private refusedBy(m: QueuedOutbound, code: number, why: string): void {
    this.refused++;
    this.refusedUnlogged++;
    this.lastRefusal = `0x${code.toString(16)} (${why}) on ${escapeForLog(m.topic)}`;
    this.logRefusals();
    this.settled(m.seq);
    this.options.onStateChange?.();
  }

  /** At most one line per REFUSED_LOG_MS, with the count since the last and the latest reason. */
  private logRefusals(): void {
    if (this.refusedTimer || this.refusedUnlogged === 0) return;
    const wait = this.refusedLoggedAt + REFUSED_LOG_MS - Date.now();
    if (wait > 0) {
      this.refusedTimer = setTimeout(() => {
        this.refusedTimer = undefined;
        this.logRefusals();
      }, wait);
      return;
    }
    this.refusedLoggedAt = Date.now();
    this.options.log(
      `bridge ${this.name}: the upstream refused ${this.refusedUnlogged} message(s), ` +
        `last ${this.lastRefusal}; dropped (${this.refused} refused so far)`,
    );
    this.refusedUnlogged = 0;
  }

  /** The message left the window for good (acknowledged or refused): out of the queue. */
  private settled(seq: number): void {
    this.inflight--;
    // A removal that fails (store unreachable) leaves the message stored: sent again after a restart.
    const r = this.options.queue.remove(seq);
    if (r instanceof Promise) r.then(() => this.queueTrouble(), (e) => this.queueTrouble(e));
    if (this.dropping && this.queued < this.options.queueMax) {
      this.dropping = false;
      this.options.log(
        `bridge ${this.name}: queue below queue-max again (${this.dropped} dropped so far)`,
      );
      this.options.onStateChange?.();
    }
    if (!this.pumping) void this.pump();
    else this.pumpAgain = true;
  }

  /** Logs the queue's store failing and recovering, once per change. */
  private queueTrouble(e?: unknown): void {
    if ((e !== undefined) === this.queueFailing) return;
    this.queueFailing = e !== undefined;
    this.options.log(
      e === undefined
        ? `bridge ${this.name}: queue store reachable again`
        : `bridge ${this.name}: queue store failing (${e instanceof Error ? e.message : e})`,
    );
  }

  /** An upstream message: published locally before MQTT.js acknowledges it. */
  private incoming(packet: IPublishPacket, done: (err?: Error) => void): void {
    const mapped = this.options.topics.inbound(packet.topic, packet.qos);
    if (!mapped) {
      if (packet.qos === 2) void this.incomingStore?.forget(packet.messageId!);
      return done();
    }
    const p = packet.payload;
    const payload = typeof p === "string" ? new TextEncoder().encode(p) : new Uint8Array(p);
    // QoS 2 (at PUBREL): the kept record goes with the local publish's store write, before
    // PUBCOMP, or (a store that cannot) once that is stored; earlier, a crash in between lost
    // the message, later it published it twice (tests/bridge_qos2_kill_test.ts).
    const kept = packet.qos === 2 ? this.incomingStore : undefined;
    const rider = kept?.deletion(packet.messageId!);
    let r: unknown;
    try {
      r = this.options.publishLocal(mapped.topic, payload, mapped.qos, packet.retain, rider);
    } catch (e) {
      return done(e as Error);
    }
    this.received++;
    const after = kept
      ? () => kept.forget(packet.messageId!, rider).then(() => done(), done)
      : done;
    if (r instanceof Promise) r.then(() => after(), (e) => done(e as Error));
    else after();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpRetry);
    clearTimeout(this.refusedTimer);
    const c = this.client;
    this.client = undefined;
    this.connected = false;
    this.generation++;
    if (c) await endClient(c);
    await this.options.queue.close();
  }
}

/** How long `stop` waits for the upstream to acknowledge what is in flight. */
const END_GRACE_MS = 2_000;

/**
 * A graceful end, bounded: MQTT.js's `end(false)` waits for every in-flight
 * message's acknowledgement, which an upstream that stopped answering never
 * sends. What is still unacknowledged stays queued (sent again next start).
 */
function endClient(c: MqttClient): Promise<void> {
  return new Promise<void>((resolve) => {
    // A second `end` while one is pending does nothing: close the socket itself.
    const timer = setTimeout(() => {
      c.stream?.destroy();
      resolve();
    }, END_GRACE_MS);
    c.end(false, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * 3.1.1 CONNECT with the bridge bit (protocol level 0x84): Mosquitto then sends
 * nothing back to the bridge that published it, as No Local does for 5.0.
 * MQTT.js has no option for it, but its packet writer (mqtt-packet) has
 * `bridgeMode`, so the CONNECT packet gets that flag on its way out.
 */
function setBridgeBit(client: MqttClient): void {
  const c = client as unknown as {
    _writePacket(p: { cmd: string; bridgeMode?: boolean }, ...rest: unknown[]): void;
  };
  const send = c._writePacket.bind(client);
  c._writePacket = (p, ...rest) =>
    send(p.cmd === "connect" ? { ...p, bridgeMode: true } : p, ...rest);
}

/**
 * Helpers for interop tests with MQTT.js over real loopback sockets: tracked
 * clients (closed by `closeAll()`), an inbox per client, bounded waits, and a
 * raw `node:net` socket for what MQTT.js refuses to send.
 *
 * Every wait here is bounded: a broker that never answers fails the test
 * with a message instead of hanging the suite.
 */
import mqtt from "mqtt";
import type {
  IClientOptions,
  IClientPublishOptions,
  IClientSubscribeOptions,
  IConnackPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscriptionGrant,
  MqttClient,
} from "mqtt";
import * as net from "node:net";
import { Buffer } from "node:buffer";

/** Default bound for one wait (ms). */
export const WAIT_MS = 5000;

/** A unique suffix so tests never share topics or client ids (also across runs on one broker). */
export function uid(): string {
  return Math.random().toString(36).slice(2, 10);
}

/** Rejects with `what` if `p` does not settle within `ms`; clears its timer either way. */
export function withTimeout<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Sleeps `ms` without leaving a timer behind if the test ends. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties?: IPublishPacket["properties"];
}

/** Every PUBLISH a client delivered to the application, in arrival order. */
export class Inbox {
  readonly messages: Received[] = [];
  private waiters = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      this.messages.push({
        topic,
        payload: payload.toString(),
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        properties: packet.properties,
      });
      for (const w of [...this.waiters]) w();
    });
  }

  /** Messages whose topic is `topic`. */
  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Waits until `pred(messages)` holds; returns the messages. */
  async until(pred: (ms: Received[]) => boolean, what: string, ms = WAIT_MS): Promise<Received[]> {
    if (pred(this.messages)) return this.messages;
    let done!: () => void;
    const ready = new Promise<void>((resolve) => (done = resolve));
    const check = () => {
      if (pred(this.messages)) done();
    };
    this.waiters.add(check);
    try {
      await withTimeout(ready, `${what} (got ${this.describe()})`, ms);
    } finally {
      this.waiters.delete(check);
    }
    return this.messages;
  }

  /** Waits for a message with this payload (and topic, if given); returns it. */
  async payload(payload: string, topic?: string, ms = WAIT_MS): Promise<Received> {
    const match = (m: Received) =>
      m.payload === payload && (topic === undefined || m.topic === topic);
    await this.until((all) => all.some(match), `message "${payload}"`, ms);
    return this.messages.find(match)!;
  }

  /** Waits until at least `n` messages arrived. */
  count(n: number, ms = WAIT_MS): Promise<Received[]> {
    return this.until((all) => all.length >= n, `${n} messages`, ms);
  }

  describe(): string {
    const shown = this.messages.slice(0, 10).map((m) =>
      `${m.topic}=${JSON.stringify(m.payload)}/q${m.qos}${m.retain ? "/r" : ""}`
    );
    return `${this.messages.length} message(s)${shown.length ? ": " + shown.join(", ") : ""}`;
  }
}

export interface Connected {
  client: MqttClient;
  connack: IConnackPacket;
  inbox: Inbox;
  /** Resolves when the connection closes (for any reason). */
  closed: Promise<void>;
  /** DISCONNECT packets the broker sent (MQTT 5). */
  disconnects: IDisconnectPacket[];
}

/** Opens MQTT.js clients and closes every one of them in `closeAll()`. */
export class Clients {
  private readonly open: MqttClient[] = [];

  constructor(private readonly url: () => string) {}

  private start(opts: IClientOptions): {
    client: MqttClient;
    inbox: Inbox;
    closed: Promise<void>;
    disconnects: IDisconnectPacket[];
  } {
    const client = mqtt.connect(this.url(), {
      reconnectPeriod: 0,
      connectTimeout: WAIT_MS,
      ...opts,
    });
    this.open.push(client);
    // Attach the inbox before CONNACK: queued messages may follow it at once.
    const inbox = new Inbox(client);
    const disconnects: IDisconnectPacket[] = [];
    client.on("disconnect", (p) => disconnects.push(p));
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    return { client, inbox, closed, disconnects };
  }

  /** Connects and waits for a successful CONNACK. */
  async connect(opts: IClientOptions = {}): Promise<Connected> {
    const c = this.start(opts);
    const connack = await withTimeout(
      new Promise<IConnackPacket>((resolve, reject) => {
        c.client.once("connect", resolve);
        c.client.once("error", reject);
        c.client.once("close", () => reject(new Error("connection closed before CONNACK")));
      }),
      `CONNACK for ${JSON.stringify(opts.clientId ?? "(generated id)")}`,
    );
    return { ...c, connack };
  }

  async closeAll(): Promise<void> {
    const all = this.open.splice(0);
    await Promise.all(
      all.map((c) =>
        withTimeout(new Promise<void>((resolve) => c.end(true, () => resolve())), "client end")
          .catch(() => {})
      ),
    );
    for (const c of all) c.removeAllListeners();
  }
}

export function subscribe(
  client: MqttClient,
  topic: string | string[],
  opts: IClientSubscribeOptions = { qos: 0 },
): Promise<ISubscriptionGrant[]> {
  return withTimeout(client.subscribeAsync(topic, opts), `SUBACK for ${topic}`);
}

export async function publish(
  client: MqttClient,
  topic: string,
  payload: string,
  opts: IClientPublishOptions = {},
): Promise<void> {
  await withTimeout(
    client.publishAsync(topic, payload, opts),
    `publish ${topic} q${opts.qos ?? 0} acknowledged`,
  );
}

export async function unsubscribe(client: MqttClient, topic: string | string[]): Promise<void> {
  await withTimeout(client.unsubscribeAsync(topic), `UNSUBACK for ${topic}`);
}

// ---------------------------------------------------------------------------
// Raw socket: CONNECT packets MQTT.js will not send (empty id with clean=false,
// a keep-alive it will not honour itself).

/** Encodes a minimal CONNECT (3.1.1 or 5.0, no will, no credentials). */
export function connectPacket(
  opts: { clientId: string; clean: boolean; keepAlive: number; version?: 4 | 5 },
): Uint8Array {
  const version = opts.version ?? 4;
  const id = Buffer.from(opts.clientId, "utf8");
  const variable = [
    0x00,
    0x04,
    0x4d,
    0x51,
    0x54,
    0x54, // "MQTT"
    version,
    opts.clean ? 0x02 : 0x00,
    opts.keepAlive >> 8,
    opts.keepAlive & 0xff,
    ...(version === 5 ? [0x00] : []), // no properties
    id.length >> 8,
    id.length & 0xff,
    ...id,
  ];
  return Uint8Array.from([0x10, ...remainingLength(variable.length), ...variable]);
}

export const PINGREQ = Uint8Array.from([0xc0, 0x00]);

function remainingLength(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A plain TCP socket that records what the broker sends and when it closes. */
export class RawSocket {
  private readonly socket: net.Socket;
  private data = new Uint8Array(0);
  private waiters = new Set<() => void>();
  isClosed = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      const next = new Uint8Array(this.data.length + chunk.length);
      next.set(this.data);
      next.set(chunk, this.data.length);
      this.data = next;
      this.wake();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.isClosed = true;
        this.wake();
        resolve();
      })
    );
  }

  static open(host: string, port: number, track: RawSocket[]): Promise<RawSocket> {
    return withTimeout(
      new Promise<RawSocket>((resolve, reject) => {
        const s = net.connect({ host, port }, () => resolve(raw));
        const raw = new RawSocket(s);
        track.push(raw);
        s.once("error", reject);
      }),
      `TCP connect to ${host}:${port}`,
    );
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** All bytes received so far. */
  get received(): Uint8Array {
    return this.data;
  }

  /** Waits until at least `n` bytes arrived (fails if the socket closes first). */
  async bytes(n: number, ms = WAIT_MS): Promise<Uint8Array> {
    await this.until(() => this.data.length >= n || this.isClosed, `${n} bytes`, ms);
    if (this.data.length < n) {
      throw new Error(`socket closed after ${this.data.length} of ${n} expected bytes`);
    }
    return this.data;
  }

  private until(pred: () => boolean, what: string, ms: number): Promise<void> {
    return waitUntil(this.waiters, pred, what, ms);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Resolves once `pred()` holds, checked now and whenever the owner calls the
 * functions in `waiters` (on data, on close); rejects after `ms`.
 */
export async function waitUntil(
  waiters: Set<() => void>,
  pred: () => boolean,
  what: string,
  ms: number,
): Promise<void> {
  if (pred()) return;
  let done!: () => void;
  const ready = new Promise<void>((resolve) => (done = resolve));
  const check = () => pred() && done();
  waiters.add(check);
  try {
    await withTimeout(ready, what, ms);
  } finally {
    waiters.delete(check);
  }
}

/** SUBACK codes as MQTT.js reports them (it rejects when any filter was refused). */
export function subackCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  return withTimeout(
    client.subscribeAsync(filters, { qos: 1 }).then(
      (grants) => grants.map((g) => g.qos as number),
      (e: { packet?: { granted?: (number | { qos: number })[] } }) => {
        if (!e.packet?.granted) throw e;
        return e.packet.granted.map((g) => typeof g === "number" ? g : g.qos);
      },
    ),
    `SUBACK for ${filters}`,
  );
}

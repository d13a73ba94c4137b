/**
 * Chaos clients for the fuzzer: each opens a raw socket and plays one random
 * script of valid and invalid MQTT for a while — garbage, mutated packets,
 * slowloris, floods that never read, slow subscribers on `#`, retained storms,
 * client-id takeovers. None of them touches `fz/good/...` except by wildcard.
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { encode } from "../../src/mqtt/encoder.ts";
import type { Packet, ProtocolVersion, QoS } from "../../src/mqtt/packet.ts";

/** Small seeded PRNG (mulberry32): a failing run is replayed with FUZZ_SEED. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export interface ChaosStats {
  connections: number;
  packets: number;
  bytesSent: number;
  bytesReceived: number;
  scripts: Record<string, number>;
}

export function newChaosStats(): ChaosStats {
  return { connections: 0, packets: 0, bytesSent: 0, bytesReceived: 0, scripts: {} };
}

const ENV = (globalThis as { process?: { env: Record<string, string | undefined> } }).process
  ?.env ?? {};
/** Messages per second per flooding client; 0 = unbounded (the broker's CPU becomes the limit). */
const FLOOD_RATE = Number(ENV.FUZZ_FLOOD_RATE ?? 5000);

const TOPICS = ["fz/chaos/a", "fz/chaos/b/c", "fz/secret/x", "fz/chaos/r/1", "fz", "fz/chaos/😀"];
const FILTERS = [
  "#",
  "fz/#",
  "fz/chaos/+",
  "fz/secret/#",
  "+/+/+",
  "$share/g/fz/#",
  "$SYS/#",
  "fz/chaos/r/#",
  "fz/good/#", // the good pair's topic, read by a chaos client that may never read it
];
const CLIENT_IDS = ["chaos-1", "chaos-2", "chaos-3", "fz-dup", ""];
const USERS = [undefined, "u1", "u2"];

type Script = (s: Session) => Promise<void>;

/** One chaos connection's context. */
class Session {
  readonly version: ProtocolVersion;
  private packetId = 1;
  closed = false;

  constructor(
    readonly rng: Rng,
    readonly socket: net.Socket,
    readonly stats: ChaosStats,
    readonly until: number,
  ) {
    this.version = rng.pick([3, 4, 4, 5, 5] as const);
  }

  write(bytes: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    this.stats.bytesSent += bytes.length;
    this.socket.write(Buffer.from(bytes));
  }

  send(p: Packet): void {
    this.stats.packets++;
    this.write(encode(p, this.version));
  }

  connect(clientId = this.rng.pick(CLIENT_IDS)): void {
    const username = this.rng.pick(USERS);
    this.send({
      type: 1,
      protocolName: this.version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: this.version,
      clean: this.rng.chance(0.7) || clientId === "",
      keepAlive: this.rng.pick([0, 1, 5, 60]),
      clientId,
      username,
      password: username ? new TextEncoder().encode("x") : undefined,
      will: this.rng.chance(0.2)
        ? { topic: "fz/chaos/will", payload: this.rng.bytes(10), qos: 1, retain: false }
        : undefined,
      properties: this.version === 5 && this.rng.chance(0.5)
        ? { receiveMaximum: 1 + this.rng.int(5), sessionExpiryInterval: this.rng.int(10) }
        : undefined,
    });
  }

  id(): number {
    this.packetId = this.packetId === 65535 ? 1 : this.packetId + 1;
    return this.packetId;
  }

  /** A random valid packet after CONNECT. */
  randomPacket(): Packet {
    const r = this.rng;
    switch (r.int(9)) {
      case 0:
      case 1:
      case 2: {
        const qos = r.int(3) as QoS;
        return {
          type: 3,
          topic: r.pick(TOPICS),
          payload: r.bytes(r.chance(0.1) ? r.int(6000) : r.int(100)),
          qos,
          retain: r.chance(0.2),
          dup: false,
          packetId: qos > 0 ? this.id() : undefined,
        };
      }
      case 3:
        return {
          type: 8,
          packetId: this.id(),
          subscriptions: [{ topicFilter: r.pick(FILTERS), qos: r.int(3) as QoS }],
        };
      case 4:
        return { type: 10, packetId: this.id(), topicFilters: [r.pick(FILTERS)] };
      case 5:
        return { type: 12 };
      case 6:
        return { type: 4, packetId: 1 + r.int(200) };
      case 7:
        return { type: r.pick([5, 6, 7] as const), packetId: 1 + r.int(200) };
      default:
        return { type: 12 };
    }
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  get live(): boolean {
    return !this.closed && Date.now() < this.until;
  }
}

/** Valid packets, then maybe an invalid one, reading normally or not at all. */
const valid: Script = async (s) => {
  if (s.rng.chance(0.5)) s.socket.pause(); // never reads: its output backs up in the broker
  s.connect();
  while (s.live) {
    for (let i = s.rng.int(20); i > 0; i--) s.send(s.randomPacket());
    await s.sleep(s.rng.int(50));
  }
  if (s.rng.chance(0.5)) s.send({ type: 14 });
};

/** Packets with bytes flipped, cut short or with lying lengths. */
const mutant: Script = async (s) => {
  s.connect();
  while (s.live) {
    const bytes = encode(s.randomPacket(), s.version === 3 ? 4 : s.version);
    const r = s.rng;
    switch (r.int(4)) {
      case 0:
        bytes[r.int(bytes.length)] ^= 1 << r.int(8);
        break;
      case 1:
        bytes[0] = r.int(256); // any type and flags, reserved ones included
        break;
      case 2:
        if (bytes.length > 1) bytes[1] = 0xff; // a remaining length that never ends or lies
        break;
      default:
        s.write(bytes.subarray(0, r.int(bytes.length)));
        continue;
    }
    s.write(bytes);
    await s.sleep(r.int(30));
  }
};

/** Random bytes, with or without a CONNECT first. */
const garbage: Script = async (s) => {
  if (s.rng.chance(0.5)) s.connect();
  while (s.live) {
    s.write(s.rng.bytes(1 + s.rng.int(300)));
    await s.sleep(s.rng.int(50));
  }
};

/** A CONNECT one byte at a time. */
const slowloris: Script = async (s) => {
  const bytes = encode({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepAlive: 30,
    clientId: "slow-" + s.rng.int(1000),
  }, 4);
  for (let i = 0; i < bytes.length && s.live; i++) {
    s.write(bytes.subarray(i, i + 1));
    await s.sleep(200);
  }
};

/**
 * QoS 1 publishes or PINGREQs at FUZZ_FLOOD_RATE per second (0: as fast as the socket takes
 * them), never reading the answers.
 */
const flood: Script = async (s) => {
  s.socket.pause();
  s.connect("flood-" + s.rng.int(20));
  const ping = s.rng.chance(0.5);
  const batch = FLOOD_RATE > 0 ? Math.max(1, Math.round(FLOOD_RATE / 100)) : 200;
  while (s.live) {
    for (let i = 0; i < batch; i++) {
      s.send(
        ping ? { type: 12 } : {
          type: 3,
          topic: "fz/chaos/flood",
          payload: s.rng.bytes(50),
          qos: 1,
          retain: false,
          dup: false,
          packetId: s.id(),
        },
      );
    }
    await s.sleep(FLOOD_RATE > 0 ? 10 : 5);
  }
};

/** Subscribes to # at QoS 1 and never acknowledges nor reads. */
const slowSubscriber: Script = async (s) => {
  s.socket.pause();
  s.connect("stuck-" + s.rng.int(20));
  s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "#", qos: s.rng.pick([0, 1]) }] });
  while (s.live) await s.sleep(100);
};

/** Retained messages on many topics (a bounded pool), then a subscribe over all of them. */
const retainedStorm: Script = async (s) => {
  s.connect();
  while (s.live) {
    for (let i = 0; i < 100; i++) {
      s.send({
        type: 3,
        topic: `fz/chaos/r/${s.rng.int(2000)}`,
        payload: s.rng.chance(0.1) ? new Uint8Array() : s.rng.bytes(s.rng.int(200)),
        qos: s.rng.int(2) as QoS,
        retain: true,
        dup: false,
        packetId: s.id(),
      });
    }
    s.send({
      type: 8,
      packetId: s.id(),
      subscriptions: [{ topicFilter: "fz/chaos/r/#", qos: s.rng.int(3) as QoS }],
    });
    await s.sleep(500);
  }
};

export const SCRIPTS: Record<string, Script> = {
  valid,
  mutant,
  garbage,
  slowloris,
  flood,
  slowSubscriber,
  retainedStorm,
};

/** FUZZ_SCRIPTS=flood,garbage narrows the choice (to find what hurts). */
const only = ENV.FUZZ_SCRIPTS;
const scriptNames = only ? only.split(",").filter((n) => n in SCRIPTS) : Object.keys(SCRIPTS);

/** Run one random script against host:port until `until` (ms epoch), then drop the socket. */
export function runChaos(
  port: number,
  rng: Rng,
  stats: ChaosStats,
  until: number,
): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const name = rng.pick(scriptNames);
    stats.scripts[name] = (stats.scripts[name] ?? 0) + 1;
    stats.connections++;
    const s = new Session(rng, socket, stats, until);
    const finish = () => {
      s.closed = true;
      socket.destroy();
      resolve();
    };
    socket.on("data", (d: Buffer) => void (stats.bytesReceived += d.length));
    socket.on("error", () => {});
    socket.on("close", () => void (s.closed = true));
    socket.once("connect", () => {
      SCRIPTS[name](s).catch(() => {}).finally(finish);
    });
    // Never outlive the round, whatever the script is waiting for.
    setTimeout(finish, Math.max(0, until - Date.now()) + 100);
  });
}

/**
 * A TCP proxy in front of a real redis-server that stops the broker's writes
 * at a chosen command, as a kill -9 right after that command would: once
 * `cutAfter(name, key)` is armed, commands go through up to and including the
 * first `name key ...` command, and nothing its connection sends after that
 * ever reaches Redis (its replies still come back). `heal()` disarms it (for
 * the restarted broker; the cut connection stays cut).
 *
 * Why a proxy: the crash windows that matter are between two writes the broker
 * makes a fraction of a millisecond apart; a kill from outside lands in them only
 * by chance (a flaky test), a cut at the command lands in them every time.
 */
import { Buffer } from "node:buffer";
import { createServer, type Server, Socket } from "node:net";

export class RedisCut {
  private cut: { matches: (args: string[]) => boolean; hit: () => void } | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, private readonly target: number) {}

  /** In front of the redis-server listening on 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<RedisCut> {
    const server = createServer();
    const cut: RedisCut = new RedisCut(server, targetPort);
    server.on("connection", (s: Socket) => cut.pipe(s));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return cut;
  }

  get url(): string {
    const a = this.server.address();
    return `redis://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  }

  /** Arm the cut; resolves once a `name key` command went through and the cut is made. */
  cutAfter(name: string, key: string): Promise<void> {
    const upper = name.toUpperCase();
    return this.cutWhen((args) => args[0]?.toUpperCase() === upper && args[1] === key);
  }

  /** Arm the cut at the first command whose words (`args[0]` its name) `matches`. */
  cutWhen(matches: (args: string[]) => boolean): Promise<void> {
    return new Promise((hit) => (this.cut = { matches, hit }));
  }

  /** Pass everything from now on (except on a connection already cut). */
  heal(): void {
    this.cut = undefined;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: Socket): void {
    const redis = new Socket();
    this.sockets.add(client).add(redis);
    let pending = Buffer.alloc(0);
    let dead = false;
    redis.connect(this.target, "127.0.0.1");
    redis.on("data", (d: Uint8Array) => client.write(d));
    client.on("data", (d: Uint8Array) => {
      if (dead) return;
      // Always parsed, so a cut armed mid-stream still finds where commands start.
      const cut = this.cut;
      pending = Buffer.concat([pending, d]);
      for (let c = nextCommand(pending); c; c = nextCommand(pending)) {
        redis.write(pending.subarray(0, c.end));
        pending = pending.subarray(c.end);
        if (cut?.matches(c.args)) {
          dead = true; // what the broker sends from here on is lost with it
          cut.hit();
          return;
        }
      }
    });
    const end = () => {
      client.destroy();
      redis.destroy();
      this.sockets.delete(client);
      this.sockets.delete(redis);
    };
    client.on("close", end).on("error", end);
    redis.on("close", end).on("error", end);
  }
}

/** The first whole RESP command (an array of bulk strings) in `b`: its words and its length. */
function nextCommand(b: Buffer): { args: string[]; end: number } | undefined {
  const line = (from: number) => {
    const eol = b.indexOf("\r\n", from);
    return eol < 0 ? undefined : { text: b.toString("latin1", from + 1, eol), next: eol + 2 };
  };
  const head = line(0);
  if (!head || b[0] !== 0x2a /* '*' */) return undefined;
  const args: string[] = [];
  let at = head.next;
  for (let i = 0; i < Number(head.text); i++) {
    const len = line(at);
    if (!len) return undefined;
    const end = len.next + Number(len.text);
    if (b.length < end + 2) return undefined;
    args.push(b.toString("latin1", len.next, end));
    at = end + 2;
  }
  return { args, end: at };
}

/**
 * A plain connection to Redis for the bus's own minimal clients (redis_publisher.ts,
 * redis_subscriber.ts): the URL's host, port, TLS (rediss:) and credentials (AUTH, written
 * first, answered by one line).
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import tls from "node:tls";

/** A socket to the Redis at `url`; `auth` is whether an AUTH was written on it. */
export function connectRedis(url: string): { socket: net.Socket; auth: boolean } {
  const u = new URL(url);
  const port = Number(u.port || 6379);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const s = u.protocol === "rediss:"
    ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
    : net.connect(port, host);
  s.setNoDelay(true);
  if (!u.password) return { socket: s, auth: false };
  const user = decodeURIComponent(u.username);
  s.write(command(["AUTH", ...(user ? [user] : []), decodeURIComponent(u.password)]));
  return { socket: s, auth: true };
}

/** A command as RESP (an array of bulk strings). */
export function command(args: readonly string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("");
}

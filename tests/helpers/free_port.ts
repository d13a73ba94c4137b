/**
 * A free loopback port for a test's server (a broker, its HTTP endpoint, a redis-server) that
 * the test starts a moment later.
 *
 * Chosen below the kernel's ephemeral range: a port from `listen(0)` comes from that range, and
 * between the check and the server's own bind an outgoing connection (a node's to Redis, a
 * client's) may take it as its local port. That made a CI run fail with "http: cannot listen on
 * 127.0.0.1:34537: Address already in use". Below the range only another listener can take it,
 * and ports handed out here are not handed out again by this process.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Lowest port chosen: above the registered services most machines run. */
const LOWEST = 20_000;
const handedOut = new Set<number>();

/** The first port of the range Linux takes outgoing connections' local ports from. */
export function ephemeralStart(): number {
  try {
    const lo = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0],
    );
    if (Number.isInteger(lo) && lo > 0) return lo;
  } catch { /* not Linux */ }
  return 49_152; // IANA's dynamic range, which other systems use
}

export async function freePort(): Promise<number> {
  const top = ephemeralStart() - 1;
  if (top - LOWEST < 1_000) return await kernelPort(); // a host with a wide ephemeral range
  for (let tries = 0; tries < 500; tries++) {
    const port = LOWEST + Math.floor(Math.random() * (top - LOWEST + 1));
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${LOWEST}-${top}`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs one round of chaos clients in a worker thread, so generating the chaos
 * does not steal the fuzzer's own event loop from the well-behaved pair it
 * measures. Message in: { port, seed, clients, until }; out: ChaosStats.
 */
import { newChaosStats, Rng, runChaos } from "./chaos.ts";

interface Round {
  port: number;
  seed: number;
  clients: number;
  until: number;
}

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Round>) => void) | null;
  postMessage(data: unknown): void;
};

scope.onmessage = async (e) => {
  const { port, seed, clients, until } = e.data;
  const rng = new Rng(seed);
  const stats = newChaosStats();
  const all: Promise<void>[] = [];
  for (let i = 0; i < clients; i++) {
    all.push(runChaos(port, new Rng(rng.int(2 ** 31)), stats, until));
  }
  await Promise.all(all);
  scope.postMessage(stats);
};

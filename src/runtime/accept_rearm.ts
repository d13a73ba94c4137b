/**
 * Deno 2.9.6's TCP listener (the native `tcp_wrap` handle, under node:net's Server as under
 * tcp_handles.ts) stops accepting for good once an accept failed with EMFILE: no error
 * reaches JS, and after descriptors are free again no connection is ever accepted
 * (tests/accept_emfile_test.ts). `listen()` again on the listening handle starts it
 * accepting again, and does nothing else (about 60 ns), so each listener does that once
 * per REARM_MS: a listener out of descriptors recovers within that once some are free.
 */
const REARM_MS = 1000;

interface ListeningHandle {
  listen(backlog: number): number;
}

/** Re-arm `handle` (when it has `listen`) until the returned stop is called. */
export function keepAccepting(handle: unknown, backlog: number): () => void {
  const h = handle as Partial<ListeningHandle> | undefined;
  if (typeof h?.listen !== "function") return () => {};
  const timer = setInterval(() => {
    try {
      h.listen!(backlog);
    } catch { /* closed meanwhile: the stop comes with the close */ }
  }, REARM_MS);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}

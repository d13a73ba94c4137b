/** The store contract (src/store/contract.ts) against the in-memory store. */
import { runStoreContract } from "../src/store/contract.ts";
import { MemorySessionData, MemorySessionStore, MemoryStore } from "../src/store/memory.ts";

runStoreContract("memory", {
  backend: () => {
    const data = new MemorySessionData();
    return Promise.resolve({
      open: () =>
        Promise.resolve({ sessions: new MemorySessionStore(data), retained: new MemoryStore() }),
      storedMessageCount: () => Promise.resolve(data.messages.size),
      durableRetained: false,
      dispose: () => Promise.resolve(),
    });
  },
});

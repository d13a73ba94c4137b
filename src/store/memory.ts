import { isExpired, type Message, ownPayload } from "../broker/message.ts";
import { RetainedIndex } from "../broker/retained_index.ts";
import type { Store } from "./types.ts";

/** The in-memory store (enable-test-mode): nothing survives a restart, nothing else is needed. */
export class MemoryStore implements Store {
  private readonly retained = new RetainedIndex<Message>();

  setRetained(topic: string, message: Message | undefined): void {
    if (message) this.retained.set(topic, ownPayload(message));
    else this.retained.delete(topic);
  }

  matchRetained(filter: string): Message[] {
    const out: Message[] = [];
    const now = Date.now();
    const expired: string[] = [];
    this.retained.match(filter, (topic, m) => {
      if (isExpired(m, now)) expired.push(topic); // 5.0 Message Expiry: gone, not just hidden
      else out.push(m);
    });
    for (const t of expired) this.retained.delete(t);
    return out;
  }

  *retainedCursor(filter: string): Generator<Message> {
    for (const [topic, m] of this.retained.matching(filter)) {
      if (isExpired(m, Date.now())) this.retained.delete(topic); // gone, not just hidden
      else yield m;
    }
  }

  retainedCount(): number {
    return this.retained.size;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

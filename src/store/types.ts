import type { Message } from "../broker/message.ts";

/**
 * Where retained messages live. The in-memory store answers synchronously;
 * a networked store (Redis) may answer with promises, so callers accept both.
 */
export interface RetainedStore {
  /** Store `message` as the retained message of its topic, or clear it with undefined [MQTT-3.3.1-10]. */
  setRetained(topic: string, message: Message | undefined): void | Promise<void>;
  /** Retained messages whose topic matches `filter` (wildcards allowed). */
  matchRetained(filter: string): Message[] | Promise<Message[]>;
  /**
   * The same, one at a time, without building the list (SUBSCRIBE streams from it); expired
   * messages may be left for the caller to skip. Optional: else `matchRetained` is used.
   */
  retainedCursor?(filter: string): Iterator<Message>;
  /** Number of retained messages (for $SYS). */
  retainedCount(): number | Promise<number>;
  close(): Promise<void>;
}

export type Store = RetainedStore;

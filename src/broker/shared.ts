import { isOnline, type Subscription } from "./session.ts";

export type ShareStrategy = "round" | "random" | "hash";

/**
 * Picks the one member of a shared-subscription group that gets a message
 * [MQTT-4.8.2-2]. Online members are preferred while any exists.
 */
export class SharePicker {
  private readonly strategy: ShareStrategy;
  private readonly counters = new Map<string, number>();

  constructor(strategy: ShareStrategy) {
    this.strategy = strategy;
  }

  pick(groupKey: string, members: Subscription[], publisher: string | undefined): Subscription {
    let candidates = members;
    if (members.length > 1) {
      const online = members.filter((m) => isOnline(m.session));
      if (online.length > 0) candidates = online;
    }
    if (candidates.length === 1) return candidates[0];
    switch (this.strategy) {
      case "random":
        return candidates[Math.floor(Math.random() * candidates.length)];
      case "hash":
        // Sticky per publisher so one publisher's messages keep their order at one member.
        return candidates[hashString(publisher ?? "") % candidates.length];
      default: {
        const n = this.counters.get(groupKey) ?? 0;
        this.counters.set(groupKey, n + 1);
        return candidates[n % candidates.length];
      }
    }
  }

  forget(groupKey: string): void {
    this.counters.delete(groupKey);
  }
}

/** Java's String.hashCode, as the original mqttx used, made non-negative. */
export function hashString(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h >>> 0;
}

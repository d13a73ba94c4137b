/**
 * `$SYS` topics a feature answers with its status: `$SYS/broker/status` and
 * the one-shot topics (sys_topics.ts), the Kafka bridge's
 * `$SYS/broker/bridge/kafka`, each MQTT bridge's `$SYS/broker/bridges/{name}/status`.
 * Nothing under `$SYS` is retained, so a client that subscribes is answered
 * the current payload at once, to it alone (`answer`, from `onSubscribed`);
 * later pushes (`publish`, `every`) are the owner's policy: periodic, on
 * change, or both.
 */
import type { LocalClient } from "../broker/local_client.ts";
import { type Levels, levels, matchesTopic } from "../acl/filters.ts";
import { escapeForLog } from "../log/escape.ts";

/** Every feature's $SYS topics live under this prefix. */
export const SYS_BROKER_PREFIX = "$SYS/broker/";

/** True for `$SYS` and `$SYS/...`: topics only the broker publishes to. */
export function isSysTopic(topic: string): boolean {
  return topic === "$SYS" || topic.startsWith("$SYS/");
}

interface Answered {
  topic: string;
  levels: Levels;
  payload: () => string;
}

export class StatusTopics {
  private readonly answered: Answered[] = [];
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private stopped = false;

  /** `local` publishes (its client id is the messages' `from`); failures go to `log`. */
  constructor(readonly local: LocalClient, private readonly log: (line: string) => void) {}

  /** Answer `topic` with `payload()` to each client that subscribes to a filter matching it. */
  add(topic: string, payload: () => string): void {
    this.answered.push({ topic, levels: levels(topic), payload });
  }

  /**
   * For `onSubscribed`: sends each added topic that `filter` matches to that
   * client alone, in the order added; returns the topics sent. A shared
   * subscription (`$share/...`) is not a `$SYS` filter and gets nothing.
   */
  answer(clientId: string, filter: string): string[] {
    if (!isSysTopic(filter)) return [];
    const f = levels(filter);
    const sent: string[] = [];
    for (const a of this.answered) {
      if (!matchesTopic(f, a.levels)) continue;
      this.local.sendTo(clientId, a.topic, a.payload());
      sent.push(a.topic);
    }
    return sent;
  }

  /**
   * To every subscriber of `topic`, a microtask later: never inside the
   * routing or connection handling that called it (a function payload is read
   * then too). Nothing once stopped.
   */
  publish(topic: string, payload: string | (() => string)): void {
    queueMicrotask(() => {
      if (this.stopped) return;
      const r = this.local.publish(topic, typeof payload === "string" ? payload : payload());
      if (r instanceof Promise) r.catch((e) => this.log(`$SYS ${escapeForLog(topic)}: ${e}`));
    });
  }

  /** Runs `f` every `ms` (at least 10) until `stop()`. */
  every(ms: number, f: () => void): void {
    this.timers.push(setInterval(f, Math.max(10, ms)));
  }

  /** Ends the timers and any publishing, also of what is already queued. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }
}

/**
 * Routing one message: the subscription index, and delivery through it to
 * every matching subscription, once per client at its highest QoS and to one
 * member per share group. Synchronous, so the scratch structures are shared.
 */
import type { QoS } from "../mqtt/packet.ts";
import type { BrokerOptions } from "./api.ts";
import { deliver, type DeliveryLimits, Qos0Cache } from "./delivery.ts";
import type { Message } from "./message.ts";
import { isOnline, type Session, type Subscription } from "./session.ts";
import { SharePicker } from "./shared.ts";
import { TopicIndex } from "./topic_index.ts";

/** Per-delivery aggregate when one client has several matching subscriptions. */
interface Aggregate {
  qos: QoS;
  retainAsPublished: boolean;
  subscriptionIds: number[] | undefined;
}

/** A share group's key: one group per (group name, filter). */
export function shareKey(sub: Subscription): string {
  return sub.group + "\0" + sub.matchFilter;
}

export class Router {
  readonly index = new TopicIndex<Subscription>();
  readonly sharePicker: SharePicker;
  /**
   * Set by a cluster around one route(): which share groups (by shareKey) this
   * node serves for the message; the others' member is on another node.
   */
  shareFilter: ((key: string) => boolean) | undefined = undefined;
  private readonly options: BrokerOptions;
  private readonly limits: DeliveryLimits;
  private readonly direct = new Map<Session, Subscription | Aggregate>();
  private readonly groups = new Map<string, Subscription[]>();
  private readonly qos0Cache = new Qos0Cache();
  /** Bumped per routed message: tells route() whether it met a session twice. */
  private routeMark = 0;

  constructor(options: BrokerOptions, limits: DeliveryLimits) {
    this.options = options;
    this.limits = limits;
    this.sharePicker = new SharePicker(options.shareTopic.strategy);
  }

  /**
   * Deliver to every matching subscription; returns how many deliveries were made. The
   * common case is handled here without building anything: no share group among the
   * matches and no session matched twice (else routeMerged). One function per message, not
   * two: each one on that path is compiled by the JIT on its own and again inlined.
   */
  route(message: Message): number {
    const index = this.index;
    // Nobody subscribed (ingest): apart, so code compiled while there were subscribers does not
    // meet the empty answer for the first time when they are gone (a JIT's forced exit).
    if (index.size === 0) return 0;
    const subs = index.matchAll(message.topic);
    const n = subs.length;
    if (n > 1) {
      const mark = ++this.routeMark;
      for (let i = 0; i < n; i++) {
        const sub = subs[i];
        if (sub.group || sub.session.routeMark === mark) return this.routeMerged(message, subs);
        sub.session.routeMark = mark;
      }
    } else if (n === 1 && subs[0].group) return this.routeMerged(message, subs);
    // One encoding shared by all subscribers pays only when there are several.
    const cache = n > 1 ? this.qos0Cache : undefined;
    cache?.reset(message);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const sub = subs[i];
      if (this.skipsOwn(sub, message)) continue;
      this.deliverTo(sub, message, sub.retainAsPublished && message.retain, cache);
      count++;
    }
    return count;
  }

  /** Deliver through one subscription: capped at its QoS [MQTT-3.8.4-6], with its identifier. */
  deliverTo(
    sub: Subscription,
    message: Message,
    retain: boolean,
    cache?: Qos0Cache,
    share?: string,
  ): void {
    const qos = Math.min(message.qos, sub.qos) as QoS;
    const ids = sub.subscriptionId ? [sub.subscriptionId] : undefined;
    deliver(sub.session, message, qos, retain, ids, this.limits, cache, share);
  }

  /** An online member of share group `share`, other than `not`, for this message. */
  otherMember(share: string, message: Message, not?: Session): Subscription | undefined {
    const online = this.index.matchAll(message.topic).filter((sub) =>
      sub.session !== not && isOnline(sub.session) && this.mayTake(sub, share, message)
    );
    return online.length > 0 ? this.pickMember(share, online, message) : undefined;
  }

  /** A member of group `share` for the message (not `not`'s): online if one is, else one that is not. */
  anyMember(share: string, message: Message, not?: Session): Subscription | undefined {
    return this.otherMember(share, message, not) ??
      this.index.matchAll(message.topic).find((sub) =>
        sub.session !== not && this.mayTake(sub, share, message)
      );
  }

  /** Whether an online member of share group `key` here may take the message (not its publisher). */
  hasOnlineMember(key: string, message: Message): boolean {
    return this.index.matchAll(message.topic).some((sub) =>
      isOnline(sub.session) && this.mayTake(sub, key, message)
    );
  }

  /** `sub` is a member of share group `key` that may take `message` (not its own publisher). */
  private mayTake(sub: Subscription, key: string, message: Message): boolean {
    return sub.group !== undefined && shareKey(sub) === key && !this.skipsOwn(sub, message);
  }

  /**
   * One member of group `key` for the message, among those whose user may
   * read its topic: a member that may not is passed over, not handed the
   * message to drop [MQTT-4.8.2-2]. With no reader at all the pick stands
   * (the drop is counted at delivery).
   */
  private pickMember(key: string, members: Subscription[], message: Message): Subscription {
    const rights = this.limits.readRights;
    if (members.length > 1 && !rights.open) {
      const readers = members.filter((m) => {
        const conn = m.session.connection;
        if (!conn || !isOnline(m.session)) return true; // checked when its queue drains
        return rights.allows(conn, message.topic, Math.min(message.qos, m.qos) as QoS, key);
      });
      if (readers.length > 0) members = readers;
    }
    return this.sharePicker.pick(key, members, message.from);
  }

  /** No Local and ignore-client-self-pub: not back to the publisher [MQTT-3.8.3-3]. */
  private skipsOwn(sub: Subscription, message: Message): boolean {
    return (sub.noLocal || this.options.ignoreClientSelfPub) &&
      message.from === sub.session.clientId;
  }

  /** Overlapping subscriptions and share groups: merge per session, pick one member per group. */
  private routeMerged(message: Message, subs: readonly Subscription[]): number {
    const direct = this.direct;
    const groups = this.groups;
    for (const sub of subs) {
      if (sub.group) {
        // No Local is refused on shared subscriptions at SUBSCRIBE [MQTT-3.8.3-4]; the
        // publisher is left out of its groups by ignore-client-self-pub only.
        if (this.skipsOwn(sub, message)) continue;
        const key = shareKey(sub);
        const members = groups.get(key);
        if (members) members.push(sub);
        else groups.set(key, [sub]);
        continue;
      }
      if (this.skipsOwn(sub, message)) continue;
      const seen = direct.get(sub.session);
      if (!seen) {
        direct.set(sub.session, sub);
        continue;
      }
      // Overlapping subscriptions: deliver once at the highest QoS; 5.0 lists every identifier.
      const agg: Aggregate = "session" in seen
        ? {
          qos: seen.qos,
          retainAsPublished: seen.retainAsPublished,
          subscriptionIds: seen.subscriptionId ? [seen.subscriptionId] : undefined,
        }
        : seen;
      if (sub.qos > agg.qos) agg.qos = sub.qos;
      agg.retainAsPublished ||= sub.retainAsPublished;
      if (sub.subscriptionId) (agg.subscriptionIds ??= []).push(sub.subscriptionId);
      direct.set(sub.session, agg);
    }
    let count = 0;
    const cache = direct.size + groups.size > 1 ? this.qos0Cache : undefined;
    cache?.reset(message);
    for (const [session, s] of direct) {
      const qos = Math.min(message.qos, s.qos) as QoS; // [MQTT-3.8.4-6]
      // The RETAIN flag is cleared on normal delivery unless Retain As Published [MQTT-3.3.1-9].
      const retain = s.retainAsPublished && message.retain;
      const ids = "session" in s
        ? (s.subscriptionId ? [s.subscriptionId] : undefined)
        : s.subscriptionIds;
      deliver(session, message, qos, retain, ids, this.limits, cache);
      count++;
    }
    direct.clear();
    if (groups.size > 0) {
      const serves = this.shareFilter;
      for (const [key, members] of groups) {
        if (serves !== undefined && !serves(key)) continue; // another node's member gets it
        const sub = this.pickMember(key, members, message);
        const retain = sub.retainAsPublished && message.retain;
        this.deliverTo(sub, message, retain, cache, key);
        count++;
      }
      groups.clear(); // only when used: clearing a Map makes it a new table
    }
    return count;
  }
}

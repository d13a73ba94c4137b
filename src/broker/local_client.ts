import type { Properties, QoS } from "../mqtt/packet.ts";
import type { BatchRider } from "../store/types.ts";
import type { Broker } from "./broker.ts";
import { deliver } from "./delivery.ts";
import type { Message } from "./message.ts";

export interface LocalPublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
  /**
   * A write stored together with the deliveries of this (QoS 1/2) publish, atomically, when
   * they go into one batch of a store that can and no hook or other node holds the message;
   * a retained message no persistent session subscribes to: with its retained write
   * (`BatchRider`: `applied` says whether it did).
   */
  rider?: BatchRider;
}

/**
 * The broker's own in-process client: $SYS, bridges and embedding programs
 * publish through it, so internal messages take exactly the path client
 * messages take (hooks, retained, routing).
 */
export class LocalClient {
  readonly broker: Broker;
  readonly clientId: string;

  constructor(broker: Broker, clientId = "$mqttx") {
    this.broker = broker;
    this.clientId = clientId;
  }

  /**
   * Publish to every matching subscription. Returns how many sessions got it;
   * at QoS 1/2 only once the message is kept as a client's PUBACK/PUBREC
   * promises (acknowledged means kept): stored for every persistent session it
   * went to (the session journal's batch), and by every hook or cluster node
   * that holds it. Whoever acknowledges on its strength (a bridge's PUBACK or
   * PUBCOMP upstream and the deletion of its kept record, a Kafka offset, an
   * API answer) then never acknowledges a message a crash could still lose.
   */
  publish(
    topic: string,
    payload: Uint8Array | string,
    opts: LocalPublishOptions = {},
  ): number | Promise<number> {
    const broker = this.broker;
    const message = this.message(topic, payload, opts);
    const journal = broker.journal;
    const changes = journal?.stats.changes;
    const routed = broker.publish(message, opts.rider);
    if (message.qos === 0) return routed;
    const held = broker.held; // taken, as the PUBLISH handler takes it
    broker.held = undefined;
    if (routed instanceof Promise) {
      // Routed once the retained message was stored (and, in a cluster, confirmed by the
      // nodes it went to): its deliveries are in the open batch, or in the one being written
      // if that went meanwhile. The rider rides only the first (`ride` checks), and only once
      // a hook holding the message kept it; unless it went with the retained write already,
      // the message's only store write (no persistent subscriber: Broker.publish).
      // That batch may also have been written, and failed, while a hook or the other nodes
      // held the message: its failure refuses it (Broker.carriers; another batch's does not).
      return routed.then(async (n) => {
        if (held) await held;
        if (opts.rider?.applied || !journal) return n; // the retained write was all it stored
        const carrier = broker.takeCarrier(message);
        if (!carrier) return n; // no persistent session got it
        if (opts.rider) journal.ride(opts.rider, message);
        void journal.whenStoredSoon(); // if it is still open: written at once
        await carrier.promise; // rejects when it failed
        return n;
      });
    }
    // The batch the journal opened for this message's deliveries (none: nothing to wait for).
    const stored = journal?.stats.changes !== changes ? journal?.whenStoredSoon() : undefined;
    // The batch holding its deliveries; not while a hook or another node still holds the
    // message (`held`): the write would go before they kept it, lost with a crash then.
    if (stored && !held && opts.rider) journal!.ride(opts.rider, message);
    if (!held && !stored) return routed;
    return Promise.all([held, stored]).then(() => routed);
  }

  /**
   * Deliver to one connected or persistent session only, bypassing routing
   * (e.g. a $SYS answer to the client that just subscribed). False if unknown.
   */
  sendTo(
    clientId: string,
    topic: string,
    payload: Uint8Array | string,
    opts: LocalPublishOptions = {},
  ): boolean {
    const session = this.broker.sessions.get(clientId);
    if (!session) return false;
    const m = this.message(topic, payload, opts);
    deliver(session, m, m.qos, m.retain, undefined, this.broker.limits);
    return true;
  }

  private message(topic: string, payload: Uint8Array | string, opts: LocalPublishOptions): Message {
    return {
      topic,
      payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
      owned: true,
      qos: opts.qos ?? 0,
      retain: opts.retain ?? false,
      properties: opts.properties,
      from: this.clientId,
      internal: true,
    };
  }
}

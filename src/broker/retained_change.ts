/**
 * The one way the retained message of a topic changes (a PUBLISH with RETAIN,
 * a will, the admin API): the store keeps it, and in a cluster every other
 * node hears of it with the whole message (5.0 properties, expiry, publisher).
 */
import type { BatchRider, RetainedStore, RetainedWrite } from "../store/types.ts";
import type { ClusterLink } from "./cluster_link.ts";
import type { Message } from "./message.ts";

/**
 * Store `message` as the retained message of `topic`, or clear it with
 * undefined [MQTT-3.3.1-10]; returns the store's write when it is async.
 * `rider` goes with that write (`RetainedStore.setRetained`).
 */
export function changeRetained(
  store: RetainedStore,
  cluster: ClusterLink | undefined,
  topic: string,
  message: Message | undefined,
  rider?: BatchRider,
): void | Promise<void> {
  const stored: void | Promise<RetainedWrite> = store.setRetained(topic, message, rider);
  cluster?.retained(topic, message, stored);
  // The caller waits for the write; the version it resolves to is the cluster's.
  return stored as void | Promise<void>;
}

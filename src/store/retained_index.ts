/**
 * Retained messages by topic name, queried by topic filter on SUBSCRIBE. A Map answers exact
 * filters directly; a trie of topic levels answers wildcard filters without scanning every topic.
 */

import { isWildcardFilter } from "../mqtt/topic.ts";

class Node {
  children: Map<string, Node> | undefined = undefined;
  /** The topic name ending here, when a retained message is stored for it. */
  topic: string | undefined = undefined;
}

export class RetainedIndex<V> {
  #byTopic = new Map<string, V>();
  #root = new Node();
  #nodes = 1;

  get size(): number {
    return this.#byTopic.size;
  }

  /** Number of trie nodes including the root; 1 when empty (lets tests prove pruning). */
  get nodeCount(): number {
    return this.#nodes;
  }

  /** Store or replace the retained message of `topic` (a valid topic name). */
  set(topic: string, value: V): void {
    if (!this.#byTopic.has(topic)) {
      let node = this.#root;
      for (const level of topic.split("/")) {
        const children = node.children ??= new Map();
        let next = children.get(level);
        if (next === undefined) {
          next = new Node();
          children.set(level, next);
          this.#nodes++;
        }
        node = next;
      }
      node.topic = topic;
    }
    this.#byTopic.set(topic, value);
  }

  /** Remove the retained message of `topic`; prunes emptied trie nodes. */
  delete(topic: string): boolean {
    if (!this.#byTopic.delete(topic)) return false;
    const levels = topic.split("/");
    const path: Node[] = [this.#root];
    for (const level of levels) path.push(path[path.length - 1].children!.get(level)!);
    path[levels.length].topic = undefined;
    for (let i = levels.length; i > 0; i--) {
      const node = path[i];
      if (node.topic !== undefined || node.children !== undefined) break;
      const parent = path[i - 1];
      parent.children!.delete(levels[i - 1]);
      if (parent.children!.size === 0) parent.children = undefined;
      this.#nodes--;
    }
    return true;
  }

  get(topic: string): V | undefined {
    return this.#byTopic.get(topic);
  }

  entries(): IterableIterator<[string, V]> {
    return this.#byTopic.entries();
  }

  /**
   * Visit every stored (topic, value) whose topic matches `filter` (a valid plain filter).
   * `visit` must not set or delete entries.
   */
  match(filter: string, visit: (topic: string, value: V) => void): void {
    if (!isWildcardFilter(filter)) {
      // A filter without wildcards matches exactly one topic name.
      if (this.#byTopic.has(filter)) visit(filter, this.#byTopic.get(filter)!);
      return;
    }
    this.#walk(this.#root, filter.split("/"), 0, visit);
  }

  #walk(node: Node, levels: string[], i: number, visit: (topic: string, value: V) => void): void {
    if (i === levels.length) {
      if (node.topic !== undefined) this.#emit(node.topic, visit);
      return;
    }
    const level = levels[i];
    if (level === "#") {
      // [MQTT-4.7.1-2] '#' matches the parent level ("a/#" matches "a") and every level below.
      if (node.topic !== undefined) this.#emit(node.topic, visit);
      this.#visitBelow(node, i === 0, visit);
      return;
    }
    if (level === "+") {
      if (node.children === undefined) return;
      for (const [name, child] of node.children) {
        // [MQTT-4.7.2-1] a leading wildcard does not match topics starting with '$'.
        if (i === 0 && name.startsWith("$")) continue;
        this.#walk(child, levels, i + 1, visit);
      }
      return;
    }
    const child = node.children?.get(level);
    if (child !== undefined) this.#walk(child, levels, i + 1, visit);
  }

  #visitBelow(node: Node, atRoot: boolean, visit: (topic: string, value: V) => void): void {
    if (node.children === undefined) return;
    for (const [name, child] of node.children) {
      if (atRoot && name.startsWith("$")) continue; // [MQTT-4.7.2-1]
      if (child.topic !== undefined) this.#emit(child.topic, visit);
      this.#visitBelow(child, false, visit);
    }
  }

  #emit(topic: string, visit: (topic: string, value: V) => void): void {
    visit(topic, this.#byTopic.get(topic)!);
  }
}

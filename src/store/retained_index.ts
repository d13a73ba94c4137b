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
   * `visit` may set or delete entries (see `matching`).
   */
  match(filter: string, visit: (topic: string, value: V) => void): void {
    for (const [topic, value] of this.matching(filter)) visit(topic, value);
  }

  /**
   * The stored (topic, value) pairs whose topic matches `filter` (a valid plain filter), one at a
   * time: a cursor that holds only its path through the trie, never a copy of the matches. The
   * index may change between steps: a topic deleted before it is reached is skipped, one added
   * may or may not be visited.
   */
  *matching(filter: string): Generator<[string, V]> {
    if (!isWildcardFilter(filter)) {
      // A filter without wildcards matches exactly one topic name.
      const value = this.#byTopic.get(filter);
      if (value !== undefined) yield [filter, value];
      return;
    }
    yield* this.#walk(this.#root, filter.split("/"), 0);
  }

  *#walk(node: Node, levels: string[], i: number): Generator<[string, V]> {
    if (i === levels.length) {
      if (node.topic !== undefined) yield* this.#emit(node.topic);
      return;
    }
    const level = levels[i];
    if (level === "#") {
      // [MQTT-4.7.1-2] '#' matches the parent level ("a/#" matches "a") and every level below.
      if (node.topic !== undefined) yield* this.#emit(node.topic);
      yield* this.#visitBelow(node, i === 0);
      return;
    }
    if (level === "+") {
      if (node.children === undefined) return;
      for (const [name, child] of node.children) {
        // [MQTT-4.7.2-1] a leading wildcard does not match topics starting with '$'.
        if (i === 0 && name.startsWith("$")) continue;
        yield* this.#walk(child, levels, i + 1);
      }
      return;
    }
    const child = node.children?.get(level);
    if (child !== undefined) yield* this.#walk(child, levels, i + 1);
  }

  *#visitBelow(node: Node, atRoot: boolean): Generator<[string, V]> {
    if (node.children === undefined) return;
    for (const [name, child] of node.children) {
      if (atRoot && name.startsWith("$")) continue; // [MQTT-4.7.2-1]
      if (child.topic !== undefined) yield* this.#emit(child.topic);
      yield* this.#visitBelow(child, false);
    }
  }

  *#emit(topic: string): Generator<[string, V]> {
    const value = this.#byTopic.get(topic);
    if (value !== undefined) yield [topic, value]; // undefined: deleted since the walk began
  }
}

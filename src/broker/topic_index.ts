/**
 * The subscription index consulted on every PUBLISH: a trie keyed by topic level with separate
 * '+' and '#' branches, so routing cost depends on the topic depth and the number of matching
 * branches, never on the total number of subscriptions.
 */

class Node<V> {
  /** Literal levels. Created lazily: most leaves never need one. */
  children: Map<string, Node<V>> | undefined = undefined;
  plus: Node<V> | undefined = undefined;
  hash: Node<V> | undefined = undefined;
  /** Entries whose filter ends exactly at this node, by key. */
  entries: Map<string, V> | undefined = undefined;
  /** The filter this node spells; only meaningful once it holds entries. */
  filter = "";

  isEmpty(): boolean {
    return this.entries === undefined && this.children === undefined &&
      this.plus === undefined && this.hash === undefined;
  }
}

/**
 * How many topics' match results are remembered. Devices tend to publish to
 * the same few topics over and over; past this many distinct ones the cache
 * starts over rather than track recency.
 */
export const MATCH_CACHE_TOPICS = 4096;

const NONE: readonly never[] = [];

export class TopicIndex<V> {
  #root = new Node<V>();
  #size = 0;
  #nodes = 1;
  /** topic → every value matching it; emptied by any add or remove. */
  #cache = new Map<string, readonly V[]>();

  /** Number of (filter,key) entries. */
  get size(): number {
    return this.#size;
  }

  /** Number of trie nodes including the root; 1 when empty (lets tests prove pruning). */
  get nodeCount(): number {
    return this.#nodes;
  }

  /**
   * Add or replace the entry of `key` under `filter` (a valid plain filter, `$share/` stripped).
   * Returns the previous value for (filter,key) or undefined.
   */
  add(filter: string, key: string, value: V): V | undefined {
    this.#forget();
    let node = this.#root;
    for (const level of filter.split("/")) {
      let next: Node<V> | undefined;
      if (level === "+") {
        next = node.plus ??= this.#newNode();
      } else if (level === "#") {
        next = node.hash ??= this.#newNode();
      } else {
        const children = node.children ??= new Map();
        next = children.get(level);
        if (next === undefined) {
          next = this.#newNode();
          children.set(level, next);
        }
      }
      node = next;
    }
    node.filter = filter;
    const entries = node.entries ??= new Map();
    const previous = entries.get(key);
    // A key may legitimately hold `undefined`; count by presence, not by value.
    if (!entries.has(key)) this.#size++;
    entries.set(key, value);
    return previous;
  }

  /** Remove (filter,key); returns the removed value or undefined. Prunes emptied nodes. */
  remove(filter: string, key: string): V | undefined {
    this.#forget();
    const levels = filter.split("/");
    const path: Node<V>[] = [this.#root];
    let node: Node<V> | undefined = this.#root;
    for (const level of levels) {
      node = level === "+" ? node.plus : level === "#" ? node.hash : node.children?.get(level);
      if (node === undefined) return undefined;
      path.push(node);
    }
    const entries = node.entries;
    if (entries === undefined || !entries.has(key)) return undefined;
    const value = entries.get(key);
    entries.delete(key);
    this.#size--;
    if (entries.size === 0) node.entries = undefined;
    // Walk back up, detaching nodes that no longer hold anything, so churn cannot leak memory.
    for (let i = levels.length; i > 0; i--) {
      const child = path[i];
      if (!child.isEmpty()) break;
      const parent = path[i - 1];
      const level = levels[i - 1];
      if (level === "+") parent.plus = undefined;
      else if (level === "#") parent.hash = undefined;
      else {
        parent.children!.delete(level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
      this.#nodes--;
    }
    return value;
  }

  get(filter: string, key: string): V | undefined {
    let node: Node<V> | undefined = this.#root;
    for (const level of filter.split("/")) {
      node = level === "+" ? node.plus : level === "#" ? node.hash : node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node.entries?.get(key);
  }

  /**
   * Call `visit` for every (value, key, filter) whose filter matches `topic` (a valid topic name).
   * Each entry is visited at most once. `visit` must not add or remove entries.
   */
  match(topic: string, visit: (value: V, key: string, filter: string) => void): void {
    const levels = topic.split("/");
    const root = this.#root;
    // [MQTT-4.7.2-1] filters starting with '+' or '#' do not match topics starting with '$'.
    if (topic.charCodeAt(0) === 0x24 /* $ */) {
      const child = root.children?.get(levels[0]);
      if (child !== undefined) this.#walk(child, levels, 1, visit);
      return;
    }
    this.#walk(root, levels, 0, visit);
  }

  #walk(
    node: Node<V>,
    levels: string[],
    i: number,
    visit: (value: V, key: string, filter: string) => void,
  ): void {
    // [MQTT-4.7.1-2] '#' matches the parent level too ("a/#" matches "a") and any deeper levels.
    if (node.hash !== undefined) emit(node.hash, visit);
    if (i === levels.length) {
      if (node.entries !== undefined) emit(node, visit);
      return;
    }
    const child = node.children?.get(levels[i]);
    if (child !== undefined) this.#walk(child, levels, i + 1, visit);
    // [MQTT-4.7.1-3] '+' matches exactly one level, including an empty one.
    if (node.plus !== undefined) this.#walk(node.plus, levels, i + 1, visit);
  }

  /**
   * Every value whose filter matches `topic`, each once, from a cache of
   * recent topics: a repeated topic costs one map lookup, no split and no
   * walk. The array is shared: read it before the next add or remove, never
   * change it.
   */
  matchAll(topic: string): readonly V[] {
    if (this.#size === 0) return NONE; // nobody subscribed: nothing to look up or remember
    const cached = this.#cache.get(topic);
    if (cached !== undefined) return cached;
    const found: V[] = [];
    this.match(topic, (value) => found.push(value));
    if (this.#cache.size >= MATCH_CACHE_TOPICS) this.#cache.clear();
    this.#cache.set(topic, found);
    return found;
  }

  #forget(): void {
    if (this.#cache.size > 0) this.#cache.clear();
  }

  #newNode(): Node<V> {
    this.#nodes++;
    return new Node<V>();
  }
}

function emit<V>(node: Node<V>, visit: (value: V, key: string, filter: string) => void): void {
  const filter = node.filter;
  for (const [key, value] of node.entries!) visit(value, key, filter);
}

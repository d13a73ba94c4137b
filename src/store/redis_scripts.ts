/**
 * How the Redis store (src/store/redis.ts) writes: every command of a batch
 * goes to Redis as the arguments of ONE call of the Lua script below, so the
 * batch is atomic (a script runs alone) and costs one request and one reply,
 * however many changes it carries (MULTI/EXEC would send back a reply per
 * command). The script runs plain commands and three steps of its own
 * (`@adjust`, `@remove`, `@delete`) that need a read before a write.
 * Message keys are shared by clients (outside a client's hash tag): this needs
 * one Redis (with replicas), not Redis Cluster.
 */
import type { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

/** One command: a Redis command and its arguments, or one of the script's own steps. */
export type Command = (string | Buffer)[];

/**
 * ARGV: the batch's payloads, one after another (one binary argument: the
 * Redis client writes each Buffer argument as a separate socket write), then,
 * for each command, its argument count, then its arguments.
 * - `@message key fields offset length`: HSET key m fields p <length bytes of the payloads
 *   from offset>.
 * - `@adjust k1..km d1..dm`: add d to the count of message ki, deleting it at zero.
 * - `@remove hash set field message`: remove the entry `field` of `hash` (and of `set`, when
 *   not empty); only if it was there, drop its reference on `message` (an acknowledgement seen
 *   twice never takes a reference another session holds).
 * - `@delete prefix queue inflight key...`: drop the reference of every entry the session's
 *   queue and in-flight hashes hold (what Redis has, not what the broker believes), then delete
 *   its keys.
 * - `@fence hash client want` (a cluster's ownership fence, before one client's commands): when
 *   field `client` of `hash` names another writer than `want` ("epoch node"; " node": any epoch
 *   of that node), the commands up to the next `@fence` are skipped and `client` is returned.
 *   An empty `hash` ends the fenced part. Returns the list of refused clients.
 */
const APPLY = `local function unref(k, d)
  local n = redis.call('HINCRBY', k, 'n', d)
  if n <= 0 then redis.call('DEL', k) end
end
local payloads = ARGV[1]
local i, n = 2, #ARGV
local skip, fenced = false, {}
while i <= n do
  local k = tonumber(ARGV[i])
  local c = ARGV[i + 1]
  if c == '@message' then
    local at = tonumber(ARGV[i + 4])
    local p = string.sub(payloads, at + 1, at + tonumber(ARGV[i + 5]))
    redis.call('HSET', ARGV[i + 2], 'm', ARGV[i + 3], 'p', p)
  elseif c == '@fence' then
    skip = false
    if ARGV[i + 2] ~= '' then
      local cur = redis.call('HGET', ARGV[i + 2], ARGV[i + 3])
      local want = ARGV[i + 4]
      if cur and cur ~= want and (string.sub(want, 1, 1) ~= ' ' or string.sub(cur, -#want) ~= want) then
        skip = true
        fenced[#fenced + 1] = ARGV[i + 3]
      end
    end
  elseif skip then
    -- a client whose writer is another node: nothing of it is written
  elseif c == '@adjust' then
    local m = (k - 1) / 2
    for j = 1, m do unref(ARGV[i + 1 + j], tonumber(ARGV[i + 1 + m + j])) end
  elseif c == '@remove' then
    if redis.call('HDEL', ARGV[i + 2], ARGV[i + 4]) == 1 then
      if ARGV[i + 3] ~= '' then redis.call('SREM', ARGV[i + 3], ARGV[i + 4]) end
      unref(ARGV[i + 5], -1)
    end
  elseif c == '@delete' then
    local prefix = ARGV[i + 2]
    for _, id in ipairs(redis.call('HKEYS', ARGV[i + 3])) do unref(prefix .. id, -1) end
    for _, v in ipairs(redis.call('HVALS', ARGV[i + 4])) do
      unref(prefix .. cjson.decode(v).m, -1)
    end
    redis.call('DEL', unpack(ARGV, i + 3, i + k))
  else
    redis.call(unpack(ARGV, i + 1, i + k))
  end
  i = i + k + 1
end
return fenced`;

/**
 * A script, called by its SHA once Redis has it (loaded at every connect), by
 * its text until then: a write never fails for a script Redis lost.
 */
class Script {
  readonly sha: string;
  loaded = false;

  constructor(readonly text: string) {
    this.sha = createHash("sha1").update(text).digest("hex");
  }

  /** The request that runs the script with `args`. */
  protected run(args: Command): Command {
    return [this.loaded ? "EVALSHA" : "EVAL", this.loaded ? this.sha : this.text, "0", ...args];
  }
}

export class ApplyScript extends Script {
  constructor() {
    super(APPLY);
  }

  /** The one request that applies `commands`, in order (`payloads`: what `@message` reads). */
  call(commands: readonly Command[], payloads: Buffer | string = ""): Command {
    const out = this.run([payloads]);
    for (const c of commands) {
      out.push(String(c.length));
      for (const a of c) out.push(a);
    }
    return out;
  }
}

/** Store a message whose payload is `length` bytes at `offset` of the call's payloads. */
export const storeMessage = (
  key: string,
  fields: string,
  offset: number,
  length: number,
): Command => ["@message", key, fields, String(offset), String(length)];

export const adjustRefs = (messageKeys: string[], deltas: number[]): Command => [
  "@adjust",
  ...messageKeys,
  ...deltas.map(String),
];

export const removeEntry = (hash: string, set: string, field: string, message: string): Command => [
  "@remove",
  hash,
  set,
  field,
  message,
];

/** Guard the commands of `clientId` that follow (see `@fence`); `fenceEnd` ends the guarded part. */
export const fence = (writers: string, clientId: string, want: string): Command => [
  "@fence",
  writers,
  clientId,
  want,
];
export const fenceEnd: Command = ["@fence", "", "", ""];

/** `keys`: the session's keys, its queue and in-flight hashes first. */
export const deleteSession = (messagePrefix: string, keys: string[]): Command => [
  "@delete",
  messagePrefix,
  ...keys,
];

/**
 * A retained change, ordered: ARGV = the counter hash, the lowest version to
 * give (the newest the node has seen: Redis may have lost its counter), the
 * topic's key, its fields ('' to clear) and payload; then plain commands to run
 * with it (a `BatchRider`'s), each as its argument count and its arguments. The
 * counter goes up by one and the topic's key holds the message and that version
 * (a clear deletes it), in one step; returns the version.
 */
const RETAIN = `local n = tonumber(redis.call('HGET', ARGV[1], 'n') or '0')
local floor = tonumber(ARGV[2])
if n < floor then n = floor end
n = n + 1
redis.call('HSET', ARGV[1], 'n', n)
redis.call('DEL', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', ARGV[3], 'm', ARGV[4], 'p', ARGV[5], 'v', n) end
local i = 6
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + k))
  i = i + k + 1
end
return n`;

/** An expired retained message: ARGV = the topic's key and its version; deleted if still held. */
const UNRETAIN = `if (redis.call('HGET', ARGV[1], 'v') or '0') == ARGV[2] then
  redis.call('DEL', ARGV[1])
end
return 0`;

export class RetainScript extends Script {
  constructor() {
    super(RETAIN);
  }

  call(
    counter: string,
    floor: number,
    key: string,
    fields: string,
    payload: Buffer,
    riders: readonly (readonly string[])[] = [],
  ): Command {
    const out = this.run([counter, String(floor), key, fields, payload]);
    for (const c of riders) out.push(String(c.length), ...c);
    return out;
  }
}

export class UnretainScript extends Script {
  constructor() {
    super(UNRETAIN);
  }

  call(key: string, version: number): Command {
    return this.run([key, String(version)]);
  }
}

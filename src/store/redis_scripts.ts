/** The Lua scripts of the Redis store (src/store/redis.ts), and how they are called. */
import type { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

export type Command = (string | Buffer)[];

/** Reference counts: add `ARGV[i]` to message `KEYS[i]`, delete it at zero. */
const ADJUST_REFS = `for i, k in ipairs(KEYS) do
  local n = redis.call('HINCRBY', k, 'n', tonumber(ARGV[i]))
  if n <= 0 then redis.call('DEL', k) end
end
return #KEYS`;

/**
 * Delete a session (KEYS: its keys, queue and in-flight first) and drop the
 * reference each of its entries held on a message (ARGV[1]: the message key
 * prefix). It reads the entries Redis has, not what the broker believes.
 * The message keys are outside the client's hash tag: single Redis only.
 */
const DELETE_SESSION = `local function unref(id)
  local k = ARGV[1] .. id
  local n = redis.call('HINCRBY', k, 'n', -1)
  if n <= 0 then redis.call('DEL', k) end
end
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do unref(id) end
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do unref(cjson.decode(v).m) end
redis.call('DEL', unpack(KEYS))
return 1`;

/**
 * Remove field ARGV[1] of hash KEYS[1] (and from set KEYS[2]); only if it was
 * there, drop a reference on message ARGV[2]: an acknowledgement seen twice
 * never takes a reference another session holds.
 */
const REMOVE_ENTRY = `if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[1]) end
local n = redis.call('HINCRBY', ARGV[2], 'n', -1)
if n <= 0 then redis.call('DEL', ARGV[2]) end
return 1`;

/**
 * A Lua script called by its SHA once Redis has it (loaded at every connect),
 * by its text until then: a write never fails for a script Redis lost.
 */
export class Script {
  readonly sha: string;
  loaded = false;
  constructor(readonly text: string) {
    this.sha = createHash("sha1").update(text).digest("hex");
  }
  call(keys: readonly string[], args: readonly (string | Buffer)[]): Command {
    return [
      this.loaded ? "EVALSHA" : "EVAL",
      this.loaded ? this.sha : this.text,
      String(keys.length),
      ...keys,
      ...args,
    ];
  }
}

/** A fresh set per store: whether a script is loaded depends on the Redis it talks to. */
export function redisScripts() {
  return {
    adjust: new Script(ADJUST_REFS),
    deleteSession: new Script(DELETE_SESSION),
    removeEntry: new Script(REMOVE_ENTRY),
  };
}

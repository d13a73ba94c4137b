/**
 * The Redis bus's Lua scripts (each one atomic step) and how it stores a will
 * (a 4-byte length, the message's fields as the store encodes them, the payload).
 */
import { Buffer } from "node:buffer";
import { bytes, ownBytes } from "../store/redis_codec.ts";
import { decodeMessage, encodeMessageFields } from "../store/codec.ts";
import type { MessageData } from "../store/types.ts";

/**
 * Refresh our liveness key unless another process holds it (0). 2: we are no longer in `nodes`
 * (KEYS[2], if given: not while joining), so the others declared us dead (DOWN: routes and
 * wills gone) while we ran.
 */
export const HEARTBEAT = `local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if KEYS[2] and redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then return 2 end
return 1`;

/**
 * Make claim `e` of node `n` the writer of client `c` in hash `w` (the fence the store's
 * script checks), unless a later claim already is.
 */
const COMMIT_WRITER = `local function commit(w, c, e, n)
  local cur = redis.call('HGET', w, c)
  if cur and tonumber(string.match(cur, '^%d+')) > tonumber(e) then return 0 end
  redis.call('HSET', w, c, e .. ' ' .. n)
  return 1
end
`;

/**
 * Take ownership of a client id: a new epoch from the counter, the previous owner. With no
 * other previous owner this claim is the writer at once; else after the hand-over (COMMIT).
 */
export const CLAIM = `${COMMIT_WRITER}local e = redis.call('INCR', KEYS[1])
local prev = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], e .. ' ' .. ARGV[2])
local suffix = ' ' .. ARGV[2]
if not prev or string.sub(prev, -#suffix) == suffix then commit(KEYS[3], ARGV[1], e, ARGV[2]) end
return {e, prev or ''}`;

/** CLAIM (and writer at once: node ARGV[3] is dead), only if the owner is still ARGV[3]; else 0. */
export const CLAIM_FROM = `${COMMIT_WRITER}local cur = redis.call('HGET', KEYS[2], ARGV[1])
local suffix = ' ' .. ARGV[3]
if not cur or string.sub(cur, -#suffix) ~= suffix then return 0 end
local e = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], e .. ' ' .. ARGV[2])
commit(KEYS[3], ARGV[1], e, ARGV[2])
return e`;

/** The previous owner handed over (or never answered): claim ARGV[2] of ARGV[3] now writes. */
export const COMMIT = `${COMMIT_WRITER}return commit(KEYS[1], ARGV[1], ARGV[2], ARGV[3])`;

/**
 * Declare node ARGV[1] dead, unless its liveness key KEYS[1] is back (a new run took the id:
 * returns {1}). Else take its wills (exactly one caller gets them: flat field, value...), drop
 * its routes and its place in \`nodes\`, and make the first caller its heir, holding KEYS[5]
 * (ARGV[2], PX ARGV[3]) while it takes the node's sessions over: returns {0, heir, wills...}.
 * One step: a returning run either finds the heir's lock or is seen alive.
 */
export const DOWN = `if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local w = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[4], ARGV[1])
local heir = redis.call('SET', KEYS[5], ARGV[2], 'NX', 'PX', ARGV[3])
local out = {0, heir and 1 or 0}
for _, v in ipairs(w) do out[#out + 1] = v end
return out`;

/** The heir's lock KEYS[1]: kept (ARGV[2] = "keep") or marked done, if still ours (ARGV[1]). */
export const HEIR_LOCK = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'keep' then redis.call('PEXPIRE', KEYS[1], ARGV[3])
else redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3]) end
return 1`;

/** Read and delete a hash in one step: exactly one caller gets its fields (flat: field, value...). */
export const TAKE_ALL = `local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v`;

/** Forget the owner (and writer) of a client id if it is still this claim. */
export const RELEASE = `for _, k in ipairs(KEYS) do
  if redis.call('HGET', k, ARGV[1]) == ARGV[2] then redis.call('HDEL', k, ARGV[1]) end
end
return 1`;

export function encodeWill(w: MessageData): Buffer {
  const head = Buffer.from(encodeMessageFields(w));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  return Buffer.concat([len, head, bytes(w.payload)]);
}

export function decodeWill(b: Buffer): MessageData | undefined {
  try {
    const n = b.readUInt32BE(0);
    return decodeMessage(b.subarray(4, 4 + n).toString(), ownBytes(b.subarray(4 + n)));
  } catch {
    return undefined;
  }
}

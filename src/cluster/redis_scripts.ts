/**
 * The Redis bus's Lua scripts (each one atomic step) and how it stores a will
 * (a 4-byte length, the message's fields as the store encodes them, the payload).
 */
import { Buffer } from "node:buffer";
import { bytes, decodeMessage, encodeMessageFields, ownBytes } from "../store/redis_codec.ts";
import type { MessageData } from "../store/types.ts";

/** Refresh our liveness key unless another process holds it. */
export const HEARTBEAT = `local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** Take ownership of a client id: a new epoch from the counter, the previous owner. */
export const CLAIM = `local e = redis.call('INCR', KEYS[1])
local prev = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], e .. ' ' .. ARGV[2])
return {e, prev or ''}`;

/** CLAIM, only if the owner is still node ARGV[3]; 0 when not. */
export const CLAIM_FROM = `local cur = redis.call('HGET', KEYS[2], ARGV[1])
local suffix = ' ' .. ARGV[3]
if not cur or string.sub(cur, -#suffix) ~= suffix then return 0 end
local e = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], e .. ' ' .. ARGV[2])
return e`;

/** Read and delete a hash in one step: exactly one caller gets its fields (flat: field, value...). */
export const TAKE_ALL = `local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v`;

/** Forget the owner of a client id if it is still this claim. */
export const RELEASE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1]) end
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

-- SessionStore::create: store a new session and list it in its user's index, atomically, with the
-- session's absolute deadline checked against Redis's own clock.
-- KEYS[1] session key, KEYS[2] the user's index (same hash tag, so the same Cluster slot)
-- ARGV[1] session JSON, ARGV[2] idle timeout (ms), ARGV[3] absolute deadline (Unix ms: the store's
-- estimate of Redis's clock + the lifetime), ARGV[4] absolute lifetime (ms), ARGV[5] tolerance (ms)
-- Returns Redis's clock (Unix ms) * 4 + outcome, one integer (an array reply costs measurably
-- more). Outcome 1: stored. 0: deadline refused (past, or off by more than the tolerance; nothing
-- written: re-anchor on the time and retry). 2: the key is taken (draw a new id).
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local deadline = tonumber(ARGV[3])
if deadline <= now or math.abs(deadline - now - ARGV[4]) > tonumber(ARGV[5]) then
  return now * 4
end
-- ZADD is the first write, and it is one Redis refuses when out of memory (noeviction): once a
-- script has written anything, Redis lets its later writes through whatever the memory, so
-- pruning first would let every create grow a full server. A key of another type raises
-- WRONGTYPE here too, before anything is written.
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], KEYS[1]) == 0 then
  return now * 4 + 2
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', math.min(ARGV[2], deadline - now)) then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return now * 4 + 2
end
-- Forget sessions past their absolute deadline (this one's is ahead: checked above).
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
-- The index lives until its last session's deadline: extend, never shorten (GT). A fresh index has
-- no TTL, which GT treats as infinite, so it gets this one (NX).
if redis.call('PEXPIREAT', KEYS[2], ARGV[3], 'GT') == 0 then
  redis.call('PEXPIREAT', KEYS[2], ARGV[3], 'NX')
end
return now * 4 + 1

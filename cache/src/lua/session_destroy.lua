-- SessionStore::destroy: delete one session and its index entry, atomically.
-- KEYS[1] session key, KEYS[2] its user's index (same hash tag, so the same Cluster slot)
-- Returns 1 when the session existed, 0 otherwise.
-- The index goes first: on a key of another type ZREM raises WRONGTYPE before anything is written.
if redis.call('ZREM', KEYS[2], KEYS[1]) == 1 then
  -- Prune sessions past their deadline and refit the TTL to the last remaining deadline (Redis
  -- deletes an index that empties).
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
end
return redis.call('DEL', KEYS[1])

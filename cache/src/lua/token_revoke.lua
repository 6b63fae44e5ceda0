-- TokenCache::revoke: replace the cached claims with a tombstone that lives as long as the token
-- could (its current TTL, or ARGV[2] ms if longer or not cached), so a racing put cannot bring the
-- revoked token back: put uses SET NX and sees the tombstone.
-- KEYS[1] token key; ARGV[1] tombstone value, ARGV[2] remaining lifetime of the token (ms)
-- Returns 1 when claims were cached (and are now revoked), 0 otherwise.
local ttl = redis.call('PTTL', KEYS[1])
local cached = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(ttl, tonumber(ARGV[2])))
if cached and cached ~= ARGV[1] then
  return 1
end
return 0

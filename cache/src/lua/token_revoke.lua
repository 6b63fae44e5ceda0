-- TokenCache::revoke: replace the cached claims with a tombstone that outlives every moment the
-- token could still be accepted, so a racing or later put cannot bring it back (put is SET NX and
-- sees the tombstone).
-- KEYS[1] token key
-- ARGV[1] tombstone value; ARGV[2] the token's exp + the skew allowance, Unix ms ('' when the exp
-- is unknown); ARGV[3] when the exp is unknown: the longest token lifetime + the skew allowance, ms
-- Every deadline is on Redis's clock, so the revoking host's clock plays no part, and the key's
-- current life is never shortened.
-- Returns 1 when claims were cached (and are now revoked), 0 otherwise.
local cached = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[3])
if ARGV[2] ~= '' then
  expires = tonumber(ARGV[2])
end
expires = math.max(expires, redis.call('PEXPIRETIME', KEYS[1]), now + 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', string.format('%d', expires))
if cached and cached ~= ARGV[1] then
  return 1
end
return 0

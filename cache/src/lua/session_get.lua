-- SessionStore::get: read a session and refresh its idle timeout in one round trip, without ever
-- extending it past the absolute lifetime recorded in the value.
-- KEYS[1] session key; ARGV[1] idle timeout (ms)
-- Returns the session JSON, or false when missing or past its absolute deadline (then deleted).
local v = redis.call('GET', KEYS[1])
if not v then
  return false
end
-- The value starts with {"absolute_expires_ms":<n>, (written so by the store) so no JSON decoding.
local deadline = tonumber(string.match(v, '^{"absolute_expires_ms":(%d+),'))
if not deadline then
  return v -- not ours: let the client report it as corrupt, do not touch it
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.min(tonumber(ARGV[1]), deadline - now)
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], ttl)
return v

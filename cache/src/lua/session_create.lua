-- SessionStore::create: store a new session and index it under its user, atomically.
-- KEYS[1] session key, KEYS[2] user index key
-- ARGV[1] session JSON, ARGV[2] idle TTL (ms), ARGV[3] session id, ARGV[4] index TTL (ms)
-- Returns 1 when stored, 0 when the id already exists (the caller draws a new id).
-- Refuse before writing anything if the index is not ours: a failure after the SET would leave
-- a session that log-out-everywhere cannot find.
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'set' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE the user index key holds a ' .. t)
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[3])
-- Extend, never shorten, the index's life: it must outlive every session it lists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1

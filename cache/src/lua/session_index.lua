-- SessionStore::create on a Redis Cluster, second step: the index lives in another slot than the
-- session, so it is updated by itself after the session was stored with SET NX PX.
-- KEYS[1] user index key; ARGV[1] session id, ARGV[2] index TTL (ms)
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1

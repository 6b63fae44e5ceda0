-- RateLimiter, fixed window (the guide's counter): INCR and its expiry in one atomic step, so a
-- crash between them can never leave an immortal counter.
-- KEYS[1] counter key; ARGV[1] window (ms)
-- Returns {count after this request, ms until the window resets}
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}

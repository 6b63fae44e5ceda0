-- RateLimiter, GCRA (generic cell rate algorithm, as go-redis/redis_rate and redis-cell): one
-- "theoretical arrival time" (TAT, µs) per key. Emission interval T = window / limit, burst
-- tolerance tau = T * (limit - 1), the same parameters as the `governor` crate's Quota.
-- KEYS[1] TAT key; ARGV[1] T (µs), ARGV[2] tau (µs),
-- ARGV[3] Redis time to decide at, Unix µs (tests only; absent or '' = Redis's TIME)
-- Returns {1 allowed / 0 denied, remaining, µs until retry (denied) or until full (allowed)}. A
-- denied request retried after the returned wait finds now == earliest: admitted, as in governor.
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local now
if ARGV[3] and ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local earliest = tat - tau
if now < earliest then
  return {0, 0, earliest - now}
end
local new_tat = tat + T
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
local remaining = math.floor((now + tau - new_tat) / T) + 1
if remaining < 0 then
  remaining = 0
end
return {1, remaining, new_tat - now}

-- RateLimiter, sliding window (two-window approximation): the estimate weights the previous
-- window's count by how much of it still overlaps the sliding window. A request is admitted only
-- when the estimate stays within the limit, and only admitted requests are counted.
-- KEYS[1] hash key (fields = window numbers); ARGV[1] window (ms), ARGV[2] limit,
-- ARGV[3] Redis time to decide at, Unix µs (tests only; absent or '' = Redis's TIME)
-- Returns {1 allowed / 0 denied, estimated count (x1000, integer), ms until the current window
-- ends, ms until a request would be admitted (0 when this one was)}
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local now
if ARGV[3] and ARGV[3] ~= '' then
  now = math.floor(tonumber(ARGV[3]) / 1000)
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local current = math.floor(now / window)
local elapsed = now - current * window
local cur = tonumber(redis.call('HGET', KEYS[1], tostring(current)) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], tostring(current - 1)) or '0')
local estimate = prev * (window - elapsed) / window + cur
local allowed = 0
local wait = 0
if estimate + 1 <= limit then
  allowed = 1
  cur = cur + 1
  estimate = estimate + 1
  redis.call('HSET', KEYS[1], tostring(current), cur)
elseif cur + 1 <= limit then
  -- Admitted later in this window, at the first whole ms e where enough of the previous window
  -- has slid out: prev * (window - e) <= (limit - 1 - cur) * window. (prev > 0, or this request
  -- would have been admitted.)
  wait = window - math.floor((limit - 1 - cur) * window / prev) - elapsed
else
  -- This window is full: admitted in the next one, once enough of this one has slid out:
  -- cur * (window - e) <= (limit - 1) * window.
  wait = window - elapsed + window - math.floor((limit - 1) * window / cur)
end
-- Forget windows older than the previous one, and keep the hash only as long as it matters.
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if tonumber(field) < current - 1 then
    redis.call('HDEL', KEYS[1], field)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], 2 * window - elapsed)
end
return {allowed, math.floor(estimate * 1000), window - elapsed, wait}

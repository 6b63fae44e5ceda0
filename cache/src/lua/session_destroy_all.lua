-- SessionStore::destroy_all_for_user ("log out everywhere"): delete every session the user's index
-- lists, and the index, in one atomic step. A concurrent create runs wholly before (its session is
-- listed, so deleted) or wholly after (it survives, listed in a fresh index): none is missed.
-- KEYS[1] the user's index
-- ARGV[1] the session key prefix ("<prefix>:session:"), ARGV[2] the suffix of every session key
-- of this user (".{<user tag>}")
-- Returns how many sessions existed.
-- The session keys come from the index, so they cannot be declared in KEYS. Redis allows that on
-- one server, and on a Cluster for keys in the declared key's slot, which every session key of
-- this user is (same hash tag). A member that is not a session key of this user is never used as a
-- key: it could name any key, or one in another slot.
local prefix, suffix = ARGV[1], ARGV[2]
local keys = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if #m > #prefix + #suffix and m:sub(1, #prefix) == prefix and m:sub(-#suffix) == suffix
      and m:sub(#prefix + 1, -#suffix - 1):match('^[%w_%-]+%.%d+$') then
    keys[#keys + 1] = m
  end
end
local existed = 0
-- DEL in chunks: unpack() of a very long list overflows Lua's C stack.
for i = 1, #keys, 1000 do
  existed = existed + redis.call('DEL', unpack(keys, i, math.min(i + 999, #keys)))
end
redis.call('DEL', KEYS[1])
return existed

-- Extends the leases a worker still holds.
--
-- KEYS: 1 active
-- ARGV: 1 key prefix, 2 lease ms, then pairs of (id, lease token)
-- Returns: the ids whose lease this worker no longer holds (rescued, or removed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local v = redis.call('HMGET', ARGV[1] .. 'job:' .. id, 'lease', 'state')
  if v[1] == ARGV[i + 1] and v[2] == 'active' then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost

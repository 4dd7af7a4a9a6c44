-- Lists the workers whose heartbeat is younger than their ttl.
--
-- KEYS: 1 workers
-- ARGV: 1 key prefix, 2 at most this many
-- Returns: flat triples of (worker id, last heartbeat ms, info JSON).
local out = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'REV', 'WITHSCORES')
for i = 1, #ids, 2 do
  local info = redis.call('GET', ARGV[1] .. 'worker:' .. ids[i])
  if info then
    out[#out + 1] = ids[i]
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = info
  end
end
return out

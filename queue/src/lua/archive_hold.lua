-- Holds a queue's starts back while its retention enforcer is far behind, or lets
-- them go again. The fetch script answers "held" (status 4) until the hold lapses.
--
-- KEYS: 1 flow
-- ARGV: 1 hold ms ('0' to release), 2 queue name, 3 wake channel
-- Returns: 1 if a hold was set or released, 0 if there was none to release.
--
-- The hold is a deadline, not a flag: the enforcer renews it on every step while it
-- is behind, so an enforcer that dies, or stops being behind without saying so,
-- holds nobody for longer than one hold.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
if ms > 0 then
  redis.call('HSET', KEYS[1], 'archive_hold', string.format('%d', now + ms))
  return 1
end
if redis.call('HDEL', KEYS[1], 'archive_hold') == 1 then
  -- Workers held back look again at once rather than when their wait ends.
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[3]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[3], ARGV[2])
  return 1
end
return 0

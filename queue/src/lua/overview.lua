-- Counts per state, the paused flag and the age of the oldest waiting job, in O(log n).
--
-- KEYS: 1 wait, 2 delayed, 3 active, 4 completed, 5 failed, 6 paused
-- ARGV: 1 key prefix
-- The oldest waiting job is looked for at the head of the queue and at the head of
-- its lowest priority band, where a starved job would sit.
-- Returns: {waiting, delayed, active, completed, failed, paused, now ms, oldest ready_at or -1}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local SHIFT = 4398046511104
local prefix = ARGV[1]
local oldest = -1
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head > 0 then
  oldest = tonumber(redis.call('HGET', prefix .. 'job:' .. head[1], 'ready_at') or now)
  local tail = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local band = math.floor(tonumber(tail[2]) / SHIFT) * SHIFT
  local first = redis.call('ZRANGE', KEYS[1], band, '+inf', 'BYSCORE', 'LIMIT', 0, 1)
  if #first > 0 then
    local r = tonumber(redis.call('HGET', prefix .. 'job:' .. first[1], 'ready_at') or now)
    if r < oldest then oldest = r end
  end
end
return {
  redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), redis.call('EXISTS', KEYS[6]),
  now, oldest
}

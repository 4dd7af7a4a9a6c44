-- Reads a queue's flow control as it stands: limits, tokens, rate pause, and what
-- waits on them. Changes nothing.
--
-- KEYS: 1 flow, 2 wait, 3 active
-- Returns: {now, rate_n or -1, rate_ms, burst, level (in 1/rate_ms token), max_active or -1,
--           pause_until or 0, waiting, active, set_by}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'rate_n', 'rate_ms', 'burst', 'level', 'ts',
  'max_active', 'pause_until', 'set_by')
local rate_n, rate_ms, burst, level = -1, 0, 0, 0
if f[1] then
  rate_n = tonumber(f[1])
  rate_ms = tonumber(f[2])
  burst = tonumber(f[3])
  local cap = burst * rate_ms
  level = tonumber(f[4] or cap)
  local ts = tonumber(f[5] or now)
  if now > ts then level = level + (now - ts) * rate_n end
  if level > cap then level = cap end
end
return {now, rate_n, rate_ms, burst, level, tonumber(f[6] or -1),
  tonumber(f[7] or 0), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  f[8] or ''}

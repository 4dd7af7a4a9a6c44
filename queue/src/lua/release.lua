-- Hands back leased jobs that a stopping worker never started, or whose handlers
-- it cut off at its shutdown timeout, at the head of their priority, without
-- counting an attempt: the job runs elsewhere at once, not after its lease expires.
--
-- KEYS: 1 active, 2 wait, 3 events, 4 sleep
-- ARGV: 1 key prefix, 2 events maxlen, 3 queue name, 4 wake channel, then pairs of (id, lease token)
-- Returns: the number of jobs handed back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local SHIFT = 4398046511104
local back = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local jk = prefix .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts', 'priority', 'started')
  if v[1] == ARGV[i + 1] and v[2] == 'active' then
    back = back + 1
    local attempts = tonumber(v[3] or 0)
    if v[5] == v[1] then
      -- Marked started (handed to the worker), but never run or cut off at
      -- shutdown: take the count back.
      attempts = attempts - 1
    end
    redis.call('HSET', jk, 'state', 'waiting', 'attempts', attempts, 'started', '', 'ready_at', now)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], (1000 - tonumber(v[4])) * SHIFT, id)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
      'type', 'job:queued', 'queue', ARGV[3], 'job_id', id, 'attempt', attempts,
      'progress', 0, 'message', 'released', 'data', '{"state":"waiting","reason":"released"}', 'ts', now)
  end
end
if back > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('DEL', KEYS[4])
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[4]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[3])
end
return back

-- Moves one job to waiting now: a failed job (retry) or a delayed one (promote).
--
-- KEYS: 1 source set (failed or delayed), 2 wait, 3 events, 4 seq, 5 sleep
-- ARGV: 1 key prefix, 2 events maxlen, 3 queue name, 4 wake channel, 5 job id,
--       6 the state the job must be in ('failed' or 'delayed'), 7 event message
-- A retried job starts its attempts afresh; its error history is kept.
-- Returns: {code, state}: 0 not found, 1 moved, 2 the job is in another state.
local prefix = ARGV[1]
local id = ARGV[5]
local jk = prefix .. 'job:' .. id
local v = redis.call('HMGET', jk, 'state', 'priority', 'attempts')
local state = v[1]
if not state then return {0, ''} end
if state ~= ARGV[6] then return {2, state} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('INCR', KEYS[4])
redis.call('ZREM', KEYS[1], id)
redis.call('ZADD', KEYS[2], (1000 - tonumber(v[2])) * 4398046511104 + seq, id)
local attempts = v[3] or 0
if state == 'failed' then
  attempts = 0
  redis.call('HSET', jk, 'state', 'waiting', 'attempts', 0, 'ready_at', now, 'run_at', now, 'progress', 0)
  redis.call('HDEL', jk, 'finished_at', 'failed_reason', 'result')
else
  redis.call('HSET', jk, 'state', 'waiting', 'ready_at', now, 'run_at', now)
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
  'type', 'job:queued', 'queue', ARGV[3], 'job_id', id, 'attempt', attempts,
  'progress', 0, 'message', ARGV[7], 'data', '{"state":"waiting","from":"' .. state .. '"}', 'ts', now)
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('DEL', KEYS[5])
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[4]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[3])
end
return {1, state}

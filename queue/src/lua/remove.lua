-- Deletes one job that is not running.
--
-- KEYS: 1 wait, 2 delayed, 3 active, 4 completed, 5 failed, 6 events
-- ARGV: 1 key prefix, 2 events maxlen, 3 queue name, 4 job id
-- Returns: {code, state}: 0 not found, 1 deleted, 2 refused because the job is active.
local prefix = ARGV[1]
local id = ARGV[4]
local jk = prefix .. 'job:' .. id
local v = redis.call('HMGET', jk, 'state', 'attempts')
local state = v[1]
if not state then return {0, ''} end
if state == 'active' then return {2, state} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sets = {waiting = KEYS[1], delayed = KEYS[2], completed = KEYS[4], failed = KEYS[5]}
if sets[state] then redis.call('ZREM', sets[state], id) end
redis.call('DEL', jk)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*',
  'type', 'job:removed', 'queue', ARGV[3], 'job_id', id, 'attempt', v[2] or 0,
  'progress', 0, 'message', 'removed', 'data', '{"state":"' .. state .. '"}', 'ts', now)
return {1, state}

-- Deletes finished jobs (completed or failed) older than a grace period, a bounded batch per call.
--
-- KEYS: 1 the finished set (completed or failed), 2 events
-- ARGV: 1 key prefix, 2 events maxlen, 3 queue name, 4 grace ms, 5 limit (at most 1000),
--       6 state name
-- Returns: the number of jobs removed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]), 'LIMIT', 0, tonumber(ARGV[5]))
if #ids == 0 then return 0 end
local keys = {}
for i = 1, #ids do keys[i] = prefix .. 'job:' .. ids[i] end
redis.call('DEL', unpack(keys))
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
  'type', 'queue:cleaned', 'queue', ARGV[3], 'job_id', '', 'attempt', 0,
  'progress', 0, 'message', '', 'data', '{"state":"' .. ARGV[6] .. '","count":' .. #ids .. '}', 'ts', now)
return #ids

-- Records progress reported by running jobs, many in one call.
--
-- KEYS: 1 events
-- ARGV: 1 key prefix, 2 events maxlen, 3 queue name, then 5 fields per report:
--       id, lease token, percent, message, data (JSON object)
-- A report from a worker that lost its lease is dropped.
-- Returns: the number of reports recorded.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local n = 0
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  local jk = prefix .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts')
  if v[1] == ARGV[i + 1] and v[2] == 'active' then
    n = n + 1
    redis.call('HSET', jk, 'progress', ARGV[i + 2], 'progress_message', ARGV[i + 3], 'progress_data', ARGV[i + 4])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
      'type', 'job:progress', 'queue', ARGV[3], 'job_id', id, 'attempt', v[3],
      'progress', ARGV[i + 2], 'message', ARGV[i + 3], 'data', ARGV[i + 4], 'ts', now)
  end
end
return n

-- Retention, step 2: removes jobs picked by retention_select.lua, once they are archived.
--
-- KEYS: 1 the finished set (completed or failed), 2 retain, 3 events
-- ARGV: 1 key prefix, 2 state, 3 events maxlen, 4 queue name, 5 '1' if archived,
--       then pairs: job id, finished score as retention_select.lua returned it
-- A job is removed only if it is still in that state with that finish time: a job
-- retried (and maybe finished again) since it was picked is a newer record than the
-- archived one, and stays.
-- Returns: the number of jobs removed.
local prefix, state = ARGV[1], ARGV[2]
local ids = {}
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  local jk = prefix .. 'job:' .. id
  if redis.call('HGET', jk, 'state') == state and redis.call('ZSCORE', KEYS[1], id) == ARGV[i + 1] then
    redis.call('DEL', jk)
    ids[#ids + 1] = id
  end
end
if #ids == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('ZREM', KEYS[2], unpack(ids))
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
  'type', 'queue:cleaned', 'queue', ARGV[4], 'job_id', '', 'attempt', '0',
  'progress', '0', 'message', 'retention',
  'data', '{"state":"' .. state .. '","count":' .. #ids .. ',"archived":' .. (ARGV[5] == '1' and 'true' or 'false') .. '}',
  'ts', now)
return #ids

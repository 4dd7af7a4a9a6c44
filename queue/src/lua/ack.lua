-- Records the outcome of finished attempts, many in one call.
--
-- KEYS: 1 active, 2 delayed, 3 completed, 4 failed, 5 events, 6 sleep
-- ARGV: 1 key prefix, 2 events maxlen, 3 stats ttl seconds, 4 queue name,
--       5 wake channel, 6 count, then 5 fields per outcome: id, lease token,
--       kind ('c' completed, 'r' retryable failure, 'f' permanent failure),
--       result JSON (for 'c') or error as a JSON string literal, retry delay ms
-- An outcome whose lease token no longer matches (the job was rescued and leased
-- again, or removed) is ignored: a stale worker cannot overwrite a newer attempt.
-- Returns: {completed, retried, failed, stale}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Numbers go to Redis as integer strings, formatted once (see enqueue.lua).
local now_s = string.format('%d', now)
local prefix = ARGV[1]
local maxlen = ARGV[2]
local queue = ARGV[4]
local n = tonumber(ARGV[6])
local done, retried, failed, stale, run_sum = 0, 0, 0, 0, 0
local rem = {}
local comp = {}
local fail = {}

local function append_error(errors, entry)
  if errors == false or errors == nil or errors == '' then
    return '[' .. entry .. ']'
  end
  return string.sub(errors, 1, -2) .. ',' .. entry .. ']'
end

for i = 0, n - 1 do
  local o = 6 + i * 5
  local id = ARGV[o + 1]
  local token = ARGV[o + 2]
  local kind = ARGV[o + 3]
  local body = ARGV[o + 4]
  local jk = prefix .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts', 'max_attempts', 'started_at', 'errors', 'started')
  if v[1] ~= token or v[2] ~= 'active' then
    stale = stale + 1
  else
    -- attempt and started are the stored strings, passed back as they are.
    local attempt = v[3]
    if v[7] ~= token then
      -- An outcome for a lease whose start was never recorded: it ran, so it counts.
      attempt = string.format('%d', tonumber(v[3] or 0) + 1)
      redis.call('HSET', jk, 'attempts', attempt, 'started', token)
    end
    local started = v[5]
    run_sum = run_sum + (now - tonumber(started))
    rem[#rem + 1] = id
    if kind == 'c' then
      done = done + 1
      redis.call('HSET', jk, 'state', 'completed', 'finished_at', now_s, 'result', body, 'progress', '100')
      comp[#comp + 1] = now_s
      comp[#comp + 1] = id
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*',
        'type', 'job:completed', 'queue', queue, 'job_id', id, 'attempt', attempt,
        'progress', '100', 'message', '', 'data', '{"result":' .. body .. '}', 'ts', now_s)
    else
      local entry = '{"attempt":' .. attempt .. ',"error":' .. body .. ',"started_at":' .. started .. ',"at":' .. now_s .. '}'
      local errors = append_error(v[6], entry)
      if kind == 'r' and tonumber(attempt) < tonumber(v[4]) then
        retried = retried + 1
        local run_at = string.format('%d', now + tonumber(ARGV[o + 5]))
        redis.call('HSET', jk, 'state', 'delayed', 'run_at', run_at, 'errors', errors)
        redis.call('ZADD', KEYS[2], run_at, id)
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*',
          'type', 'job:retrying', 'queue', queue, 'job_id', id, 'attempt', attempt,
          'progress', '0', 'message', body, 'data', '{"run_at":' .. run_at .. ',"delay_ms":' .. ARGV[o + 5] .. '}', 'ts', now_s)
      else
        failed = failed + 1
        local reason = 'permanent'
        if kind == 'r' then reason = 'attempts_exhausted' end
        redis.call('HSET', jk, 'state', 'failed', 'finished_at', now_s, 'errors', errors, 'failed_reason', reason)
        fail[#fail + 1] = now_s
        fail[#fail + 1] = id
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*',
          'type', 'job:failed', 'queue', queue, 'job_id', id, 'attempt', attempt,
          'progress', '0', 'message', body, 'data', '{"reason":"' .. reason .. '"}', 'ts', now_s)
      end
    end
  end
end
if #rem > 0 then
  redis.call('ZREM', KEYS[1], unpack(rem))
  local sk = prefix .. 'stats:' .. math.floor(now / 60000)
  if done > 0 then redis.call('HINCRBY', sk, 'completed', string.format('%d', done)) end
  if retried > 0 then redis.call('HINCRBY', sk, 'retried', string.format('%d', retried)) end
  if failed > 0 then redis.call('HINCRBY', sk, 'failed', string.format('%d', failed)) end
  redis.call('HINCRBY', sk, 'run_ms', string.format('%d', run_sum))
  redis.call('EXPIRE', sk, ARGV[3])
end
if #comp > 0 then redis.call('ZADD', KEYS[3], unpack(comp)) end
if #fail > 0 then redis.call('ZADD', KEYS[4], unpack(fail)) end
if retried > 0 and redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('DEL', KEYS[6])
  redis.call('PUBLISH', ARGV[5], queue)
end
return {done, retried, failed, stale}

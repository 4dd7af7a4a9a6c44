-- Records the outcome of finished attempts, many in one call.
--
-- KEYS: 1 active, 2 delayed, 3 completed, 4 failed, 5 events, 6 sleep, 7 flow,
--       8 capwait
-- ARGV: 1 key prefix, 2 events maxlen, 3 stats ttl seconds, 4 queue name,
--       5 wake channel, 6 count, then 5 fields per outcome: id, lease token,
--       kind ('c' completed, 'r' retryable failure, 'f' permanent failure,
--       'd' deferred by the handler, 'p' deferred and the queue's rate paused),
--       result JSON (for 'c') or error as a JSON string literal, retry delay ms
-- A deferral ('d', 'p': the handler's retry_after) puts the job back in delayed
-- without spending an attempt; a job deferred more than max_attempts times fails
-- (reason deferrals_exhausted). 'p' also holds back every start of the queue until
-- the job's run time (flow's pause_until), so no other job hits the same limit.
-- An outcome whose lease token no longer matches (the job was rescued and leased
-- again, or removed) is ignored: a stale worker cannot overwrite a newer attempt.
-- Returns: {completed, retried, failed, stale, deferred, then the failed by reason:
-- permanent, attempts_exhausted, deferrals_exhausted}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Numbers go to Redis as integer strings, formatted once (see enqueue.lua).
local now_s = string.format('%d', now)
local prefix = ARGV[1]
local maxlen = ARGV[2]
local queue = ARGV[4]
local n = tonumber(ARGV[6])
-- Longest retry delay: one year, as the longest delay a job may be enqueued with.
local MAX_DELAY_MS = 366 * 24 * 3600 * 1000
local done, retried, failed, stale, deferred, run_sum = 0, 0, 0, 0, 0, 0
local f_permanent, f_exhausted, f_deferrals = 0, 0, 0
local pause_until = 0
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
  local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts', 'max_attempts', 'started_at', 'errors', 'started', 'deferrals', 'worker')
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
    elseif (kind == 'd' or kind == 'p') and tonumber(v[8] or 0) < tonumber(v[4]) then
      deferred = deferred + 1
      local deferrals = string.format('%d', tonumber(v[8] or 0) + 1)
      local delay = math.min(math.max(tonumber(ARGV[o + 5]) or 0, 0), MAX_DELAY_MS)
      local delay_s = string.format('%d', delay)
      local run_at = string.format('%d', now + delay)
      -- The attempt does not count: take back what fetch.lua (or the lines above) added.
      local attempts = string.format('%d', math.max(tonumber(attempt) - 1, 0))
      redis.call('HSET', jk, 'state', 'delayed', 'run_at', run_at, 'attempts', attempts,
        'started', '', 'deferrals', deferrals, 'deferred_reason', body)
      redis.call('ZADD', KEYS[2], run_at, id)
      if kind == 'p' and now + delay > pause_until then pause_until = now + delay end
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*',
        'type', 'job:retrying', 'queue', queue, 'job_id', id, 'attempt', attempt,
        'progress', '0', 'message', body,
        'data', '{"run_at":' .. run_at .. ',"delay_ms":' .. delay_s .. ',"deferred":true,"deferrals":' .. deferrals .. ',"rate_paused":' .. tostring(kind == 'p') .. '}',
        'ts', now_s)
    else
      -- The worker that ran the attempt, as fetch.lua recorded it with the lease.
      local worker = 'null'
      if v[9] then worker = cjson.encode(v[9]) end
      local entry = '{"attempt":' .. attempt .. ',"error":' .. body .. ',"started_at":' .. started .. ',"at":' .. now_s .. ',"worker":' .. worker .. '}'
      local errors = append_error(v[6], entry)
      if kind == 'r' and tonumber(attempt) < tonumber(v[4]) then
        retried = retried + 1
        -- The worker caps the delay; this bound keeps the arithmetic exact whatever
        -- it is sent (a double holds integers exactly up to 2^53).
        local delay = math.min(math.max(tonumber(ARGV[o + 5]) or 0, 0), MAX_DELAY_MS)
        local delay_s = string.format('%d', delay)
        local run_at = string.format('%d', now + delay)
        redis.call('HSET', jk, 'state', 'delayed', 'run_at', run_at, 'errors', errors)
        redis.call('ZADD', KEYS[2], run_at, id)
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*',
          'type', 'job:retrying', 'queue', queue, 'job_id', id, 'attempt', attempt,
          'progress', '0', 'message', body, 'data', '{"run_at":' .. run_at .. ',"delay_ms":' .. delay_s .. '}', 'ts', now_s)
      else
        failed = failed + 1
        local reason = 'permanent'
        if kind == 'r' then reason = 'attempts_exhausted' end
        if kind == 'd' or kind == 'p' then reason = 'deferrals_exhausted' end
        if reason == 'permanent' then f_permanent = f_permanent + 1
        elseif reason == 'attempts_exhausted' then f_exhausted = f_exhausted + 1
        else f_deferrals = f_deferrals + 1 end
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
  if deferred > 0 then redis.call('HINCRBY', sk, 'deferred', string.format('%d', deferred)) end
  redis.call('HINCRBY', sk, 'run_ms', string.format('%d', run_sum))
  redis.call('EXPIRE', sk, ARGV[3])
end
if #comp > 0 then redis.call('ZADD', KEYS[3], unpack(comp)) end
if #fail > 0 then redis.call('ZADD', KEYS[4], unpack(fail)) end
if pause_until > 0 then
  local cur = tonumber(redis.call('HGET', KEYS[7], 'pause_until') or 0)
  if pause_until > cur then
    redis.call('HSET', KEYS[7], 'pause_until', string.format('%d', pause_until))
  end
end
local wake = false
if retried + deferred > 0 and redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('DEL', KEYS[6])
  wake = true
end
-- A worker found the queue at its max_active: a slot is free now.
if #rem > 0 and redis.call('EXISTS', KEYS[8]) == 1 then
  redis.call('DEL', KEYS[8])
  wake = true
end
-- A channel that starts with '{' is the queue's shard channel (on a cluster).
if wake then redis.call(string.byte(ARGV[5]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[5], queue) end
return {done, retried, failed, stale, deferred, f_permanent, f_exhausted, f_deferrals}

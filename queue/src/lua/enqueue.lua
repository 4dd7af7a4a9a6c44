-- Adds jobs to one queue, in one atomic step.
--
-- KEYS: 1 wait, 2 delayed, 3 events, 4 seq, 5 sleep, 6 retain
-- ARGV: 1 key prefix, 2 events maxlen, 3 wake channel, 4 queue name, 5 job count,
--       then 13 fields per job: id, payload, priority, delay_ms, max_attempts,
--       backoff (JSON), idempotency key ('' for none), idempotency ttl ms, request id,
--       traceparent ('' for none), payload hash, retention of its own ('' for the
--       queue's; see retention_select.lua), the id of the API key that submitted it
--       ('' for none)
-- Returns: a flat array, two items per job: the job id, then 1 if it was created,
--          0 if an earlier job owns the idempotency key (its id is returned), or 2 if
--          that earlier job had another payload (a claim is `<id> <payload hash>`).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Numbers are formatted once, as integers: Redis formats a Lua number argument as a
-- double (printf %.17g), which costs more than the command itself.
local now_s = string.format('%d', now)
local prefix = ARGV[1]
local maxlen = ARGV[2]
local queue = ARGV[4]
local n = tonumber(ARGV[5])
-- Waiting jobs sort by (1000 - priority) * 2^42 + seq: higher priority first, FIFO within.
local SHIFT = 4398046511104
local seq = redis.call('INCRBY', KEYS[4], n) - n
local out = {}
local runnable = false
-- Sorted-set members are added in one call per set at the end, not one per job.
local waiting, delayed = {}, {}
for i = 0, n - 1 do
  local o = 5 + i * 13
  local id = ARGV[o + 1]
  local ikey = ARGV[o + 7]
  local existing = false
  if ikey ~= '' then
    local ik = prefix .. 'idem:' .. ikey
    local prev = redis.call('GET', ik)
    if prev then
      local pid, phash = string.match(prev, '^(%S+) (%S+)$')
      out[#out + 1] = pid or prev
      out[#out + 1] = (phash and phash ~= ARGV[o + 11]) and 2 or 0
      existing = true
    else
      redis.call('SET', ik, id .. ' ' .. ARGV[o + 11], 'PX', ARGV[o + 8])
    end
  end
  if not existing then
    seq = seq + 1
    local pri_s = ARGV[o + 3]
    local delay = tonumber(ARGV[o + 4])
    local jk = prefix .. 'job:' .. id
    local state = 'waiting'
    local run_at = now_s
    if delay > 0 then
      state = 'delayed'
      run_at = string.format('%d', now + delay)
      delayed[#delayed + 1] = run_at
      delayed[#delayed + 1] = id
    else
      waiting[#waiting + 1] = string.format('%d', (1000 - tonumber(pri_s)) * SHIFT + seq)
      waiting[#waiting + 1] = id
    end
    runnable = true
    -- Fields that start at 0 or empty (attempts, lease, progress, idempotency_key,
    -- request_id, traceparent, submitter) are left out: readers treat a missing field as 0 or empty.
    if ikey ~= '' then
      redis.call('HSET', jk, 'idempotency_key', ikey)
    end
    if ARGV[o + 9] ~= '' then
      redis.call('HSET', jk, 'request_id', ARGV[o + 9])
    end
    if ARGV[o + 10] ~= '' then
      redis.call('HSET', jk, 'traceparent', ARGV[o + 10])
    end
    if ARGV[o + 13] ~= '' then
      redis.call('HSET', jk, 'submitter', ARGV[o + 13])
    end
    if ARGV[o + 12] ~= '' then
      -- Retention finds jobs with limits of their own through this index.
      redis.call('HSET', jk, 'retention', ARGV[o + 12])
      redis.call('ZADD', KEYS[6], string.format('%d', seq), id)
    end
    redis.call('HSET', jk,
      'payload', ARGV[o + 2], 'state', state, 'priority', pri_s,
      'max_attempts', ARGV[o + 5], 'backoff', ARGV[o + 6],
      'created_at', now_s, 'run_at', run_at, 'ready_at', run_at)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
      'type', 'job:queued', 'queue', queue, 'job_id', id, 'attempt', '0', 'progress', '0',
      'message', state, 'data', '{"state":"' .. state .. '","run_at":' .. run_at .. ',"priority":' .. pri_s .. '}',
      'ts', now_s)
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if #waiting > 0 then redis.call('ZADD', KEYS[1], unpack(waiting)) end
if #delayed > 0 then redis.call('ZADD', KEYS[2], unpack(delayed)) end
if runnable and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('DEL', KEYS[5])
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[3]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[3], queue)
end
return out

-- Leases up to N waiting jobs to one worker, after promoting due delayed jobs.
--
-- KEYS: 1 wait, 2 delayed, 3 active, 4 events, 5 paused, 6 sleep, 7 seq, 8 flow,
--       9 capwait
-- ARGV: 1 key prefix, 2 events maxlen, 3 worker id, 4 N, 5 lease ms,
--       6 promote batch, 7 stats ttl seconds, 8 queue name, 9 fetch sequence
--       number (this worker's, counting up)
-- Returns: {status, next_due, jobs...} where status is 0 (ok), 1 (paused), 2 (rate
--          limited: next_due is the ms until the next token is due or the rate pause
--          ends), 3 (at max_active: wait for a job to finish) or 4 (held while the
--          archive catches up: next_due is the ms until the hold lapses); for status 0,
--          next_due is how many ms until the earliest delayed job falls due, when the
--          queue ran dry (-1 if none or not dry; relative, so worker clocks need not
--          agree), and each job is 10 items: id, payload, attempt (the one it would
--          counted now), max_attempts, backoff, lease token, request id,
--          wait ms, traceparent, deferrals.
--
-- Attempts count here, at the lease, and the batch stays "unconfirmed" (the
-- `unconfirmed:<worker>` key: its sequence number, then id and token pairs) until
-- the worker says it has the reply in hand (confirm.lua, before its handlers run).
-- A batch whose reply was lost, to a timeout or a dropped connection, is never
-- confirmed, so it costs nothing: the worker's next fetch hands it back first,
-- uncounted, and if the worker never comes back, the rescue sees it unconfirmed
-- (rescue.lua). Only the worker's latest batch can be unconfirmed: any earlier
-- one was handed back by the fetch that followed it.
--
-- Flow control (the `flow` hash, see flow.rs): a token bucket of `burst` tokens
-- refilled at `rate_n` per `rate_ms`, kept as an integer `level` in units of
-- 1/rate_ms token (a token is rate_ms units; each ms adds rate_n units), so the
-- arithmetic stays exact; `max_active` caps the queue's active set; `pause_until`
-- holds back every start until then (a handler's rate pause); `archive_hold` holds
-- them back while the retention enforcer is far behind (archive_hold.lua). A queue
-- without any of them costs one HMGET of a missing key.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Numbers go to Redis as integer strings, formatted once (see enqueue.lua).
local now_s = string.format('%d', now)
local prefix = ARGV[1]
local maxlen = ARGV[2]
local worker = ARGV[3]
local n = tonumber(ARGV[4])
local queue = ARGV[8]
local SHIFT = 4398046511104
local asked = n
local fseq = ARGV[9]
local pk = prefix .. 'unconfirmed:' .. worker

local pend = redis.call('GET', pk)
if pend then
  -- The previous batch's reply never reached this worker: nobody runs those jobs.
  local f, back = {}, 0
  for w in string.gmatch(pend, '%S+') do f[#f + 1] = w end
  for i = 2, #f - 1, 2 do
    local id = f[i]
    local jk = prefix .. 'job:' .. id
    local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts', 'priority')
    if v[1] == f[i + 1] and v[2] == 'active' then
      back = back + 1
      local attempts = string.format('%d', tonumber(v[3]) - 1)
      redis.call('HSET', jk, 'state', 'waiting', 'attempts', attempts, 'started', '',
        'ready_at', now_s)
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZADD', KEYS[1], string.format('%d', (1000 - tonumber(v[4])) * SHIFT), id)
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*',
        'type', 'job:queued', 'queue', queue, 'job_id', id, 'attempt', attempts,
        'progress', '0', 'message', 'fetch reply lost; no attempt counted',
        'data', '{"state":"waiting","reason":"reply_lost"}', 'ts', now_s)
    end
  end
  redis.call('DEL', pk)
end

if redis.call('EXISTS', KEYS[5]) == 1 then
  -- Paused: nobody starts a job of this queue. Ask to be woken on resume.
  redis.call('SET', KEYS[6], 1)
  return {1, -1}
end

-- Promote due delayed jobs, a bounded batch per call.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_s, 'LIMIT', '0', ARGV[6])
if #due > 0 then
  local seq = redis.call('INCRBY', KEYS[7], #due) - #due
  local zargs = {}
  for i = 1, #due do
    local jk = prefix .. 'job:' .. due[i]
    local pri = redis.call('HGET', jk, 'priority')
    if pri then
      seq = seq + 1
      zargs[#zargs + 1] = string.format('%d', (1000 - tonumber(pri)) * SHIFT + seq)
      zargs[#zargs + 1] = due[i]
      redis.call('HSET', jk, 'state', 'waiting', 'ready_at', now_s)
    end
  end
  redis.call('ZREM', KEYS[2], unpack(due))
  if #zargs > 0 then
    redis.call('ZADD', KEYS[1], unpack(zargs))
  end
end

local flow = redis.call('HMGET', KEYS[8], 'rate_n', 'rate_ms', 'burst', 'max_active',
  'level', 'ts', 'pause_until', 'archive_hold')
local rate_n, rate_ms, level
if flow[1] or flow[4] or flow[7] or flow[8] then
  local hold = tonumber(flow[8] or 0)
  if hold > now then
    return {4, hold - now}
  end
  local pause_until = tonumber(flow[7] or 0)
  if pause_until > now then
    return {2, pause_until - now}
  end
  if flow[4] then
    local room = tonumber(flow[4]) - redis.call('ZCARD', KEYS[3])
    if room <= 0 then
      -- Ask to be woken when a job of the queue finishes (ack.lua).
      redis.call('SET', KEYS[9], 1)
      return {3, -1}
    end
    if room < n then n = room end
  end
  if flow[1] then
    rate_n = tonumber(flow[1])
    rate_ms = tonumber(flow[2])
    local cap = tonumber(flow[3]) * rate_ms
    level = tonumber(flow[5] or cap)
    local ts = tonumber(flow[6] or now)
    if now > ts then
      level = math.min(cap, level + (now - ts) * rate_n)
    end
    if level > cap then level = cap end
    local avail = math.floor(level / rate_ms)
    if avail < 1 then
      if redis.call('ZCARD', KEYS[1]) > 0 then
        redis.call('HSET', KEYS[8], 'level', string.format('%d', level), 'ts', now_s)
        return {2, math.ceil((rate_ms - level) / rate_n)}
      end
      n = 0
    elseif avail < n then
      n = avail
    end
  end
end

local popped = {}
if n > 0 then
  popped = redis.call('ZPOPMIN', KEYS[1], n)
end
local worker_data = '{"worker":"' .. worker .. '"}'
local out = {0, -1}
local zargs = {}
local expiry = string.format('%d', now + tonumber(ARGV[5]))
local count = 0
local wait_sum = 0
local batch = {fseq}
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = prefix .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'payload', 'attempts', 'max_attempts', 'backoff', 'lease', 'ready_at', 'request_id', 'traceparent', 'deferrals')
  if v[1] then
    local attempt = string.format('%d', tonumber(v[2] or 0) + 1)
    local token = string.format('%d', tonumber(v[5] or 0) + 1)
    local wait = now - tonumber(v[6])
    redis.call('HSET', jk, 'state', 'active', 'lease', token, 'attempts', attempt,
      'started', token, 'fetch', fseq, 'started_at', now_s, 'worker', worker)
    batch[#batch + 1] = id
    batch[#batch + 1] = token
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*',
      'type', 'job:active', 'queue', queue, 'job_id', id, 'attempt', attempt,
      'progress', '0', 'message', '', 'data', worker_data, 'ts', now_s)
    zargs[#zargs + 1] = expiry
    zargs[#zargs + 1] = id
    count = count + 1
    wait_sum = wait_sum + wait
    out[#out + 1] = id
    out[#out + 1] = v[1]
    out[#out + 1] = attempt
    out[#out + 1] = v[3]
    out[#out + 1] = v[4]
    out[#out + 1] = token
    out[#out + 1] = v[7]
    out[#out + 1] = wait
    out[#out + 1] = v[8] or ''
    out[#out + 1] = v[9] or '0'
  end
end
if rate_n then
  -- Charge the bucket for what was leased (nothing if the queue was empty).
  redis.call('HSET', KEYS[8], 'level', string.format('%d', level - count * rate_ms), 'ts', now_s)
end
if count > 0 then
  -- Kept for a day: far longer than any lease, so the rescue still finds it.
  redis.call('SET', pk, table.concat(batch, ' '), 'EX', 86400)
  redis.call('ZADD', KEYS[3], unpack(zargs))
  local sk = prefix .. 'stats:' .. math.floor(now / 60000)
  redis.call('HINCRBY', sk, 'started', string.format('%d', count))
  redis.call('HINCRBY', sk, 'wait_ms', string.format('%d', wait_sum))
  redis.call('EXPIRE', sk, ARGV[7])
end
if count < n or count == 0 then
  -- The queue ran dry: ask to be woken by the next enqueue, and say when the
  -- earliest delayed job falls due so the worker can set a timer for it.
  redis.call('SET', KEYS[6], 1)
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt > 0 then
    out[2] = math.max(0, tonumber(nxt[2]) - now)
  end
elseif n < asked then
  -- Flow control held part of the batch back: the worker looks again at once and
  -- is told how long to wait.
  out[2] = 0
end
return out

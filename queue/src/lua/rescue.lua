-- Returns jobs whose lease expired (their worker died or hung) to the queue.
--
-- KEYS: 1 active, 2 wait, 3 failed, 4 events, 5 seq, 6 sleep
-- ARGV: 1 key prefix, 2 events maxlen, 3 batch, 4 queue name, 5 wake channel, 6 stats ttl
-- The attempt that was running counts: a job whose attempts are exhausted fails
-- with reason 'stalled' instead of looping forever (a poison pill that kills its worker).
-- A lease whose handler never started counts nothing: the job goes back to waiting
-- with its attempts and errors as they were. That is a lease from a batch its
-- worker never confirmed (fetch.lua, confirm.lua: the fetch reply was lost, or the
-- worker died before it had the reply in hand), or one whose start was never
-- marked (leased by a worker of an earlier version, which marked starts apart).
-- Returns: {rescued to waiting, failed}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local maxlen = ARGV[2]
local queue = ARGV[4]
local SHIFT = 4398046511104
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then return {0, 0} end
local seq = redis.call('INCRBY', KEYS[5], #ids) - #ids
local back, failed = 0, 0
-- Each worker's unconfirmed batch: its fetch sequence number, or false.
local unconfirmed = {}
local function confirmed(worker, fetch)
  if not worker or not fetch then return true end
  local u = unconfirmed[worker]
  if u == nil then
    local pend = redis.call('GET', prefix .. 'unconfirmed:' .. worker)
    u = pend and string.match(pend, '^%S+') or false
    unconfirmed[worker] = u
  end
  return u ~= fetch
end
for i = 1, #ids do
  local id = ids[i]
  local jk = prefix .. 'job:' .. id
  local v = redis.call('HMGET', jk, 'attempts', 'max_attempts', 'priority', 'errors', 'started_at', 'worker', 'lease', 'started', 'fetch')
  -- attempts is absent until the first start (enqueue leaves zero fields out):
  -- priority is always there, so it says whether the job exists.
  local never_ran = v[8] ~= v[7]
  if v[3] and not never_ran and not confirmed(v[6], v[9]) then
    -- Counted at the fetch, but the batch never reached its worker: take it back.
    never_ran = true
    v[1] = string.format('%d', tonumber(v[1]) - 1)
    redis.call('HSET', jk, 'attempts', v[1], 'started', '')
  end
  if v[3] and never_ran then
    back = back + 1
    seq = seq + 1
    redis.call('HSET', jk, 'state', 'waiting', 'ready_at', now)
    redis.call('ZADD', KEYS[2], (1000 - tonumber(v[3])) * SHIFT + seq, id)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*',
      'type', 'job:stalled', 'queue', queue, 'job_id', id, 'attempt', v[1] or 0,
      'progress', 0, 'message', 'lease expired before the job started; no attempt counted',
      'data', '{"started":false}', 'ts', now)
  elseif v[3] then
    local attempt = tonumber(v[1] or 0)
    local entry = '{"attempt":' .. attempt .. ',"error":"stalled: lease expired (worker ' .. (v[6] or '?') ..
      ' stopped renewing it)","started_at":' .. (v[5] or now) .. ',"at":' .. now ..
      ',"worker":' .. (v[6] and cjson.encode(v[6]) or 'null') .. '}'
    local errors = entry
    if v[4] and v[4] ~= '' then errors = string.sub(v[4], 1, -2) .. ',' .. entry .. ']' else errors = '[' .. entry .. ']' end
    if attempt >= tonumber(v[2]) then
      failed = failed + 1
      redis.call('HSET', jk, 'state', 'failed', 'finished_at', now, 'errors', errors, 'failed_reason', 'stalled')
      redis.call('ZADD', KEYS[3], now, id)
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*',
        'type', 'job:failed', 'queue', queue, 'job_id', id, 'attempt', attempt,
        'progress', 0, 'message', 'stalled', 'data', '{"reason":"stalled"}', 'ts', now)
    else
      back = back + 1
      seq = seq + 1
      redis.call('HSET', jk, 'state', 'waiting', 'ready_at', now, 'errors', errors)
      redis.call('ZADD', KEYS[2], (1000 - tonumber(v[3])) * SHIFT + seq, id)
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*',
        'type', 'job:stalled', 'queue', queue, 'job_id', id, 'attempt', attempt,
        'progress', 0, 'message', 'lease expired', 'data', '{}', 'ts', now)
    end
  end
end
redis.call('ZREM', KEYS[1], unpack(ids))
local sk = prefix .. 'stats:' .. math.floor(now / 60000)
redis.call('HINCRBY', sk, 'stalled', #ids)
if failed > 0 then redis.call('HINCRBY', sk, 'failed', failed) end
redis.call('EXPIRE', sk, ARGV[6])
if back > 0 and redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('DEL', KEYS[6])
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[5]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[5], queue)
end
return {back, failed}

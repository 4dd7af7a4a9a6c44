-- Retention, step 1: picks a bounded batch of finished jobs of one state that are past
-- their retention (age or count), without changing them. The caller archives them and
-- then removes them with retention_remove.lua.
--
-- KEYS: 1 the finished set (completed or failed), 2 retain (jobs with a retention of
--       their own), 3 head cursor of this state, 4 sweep cursor of this state,
--       5 retention lock
-- ARGV: 1 key prefix, 2 state, 3 queue max age ms, 4 queue max count, 5 batch,
--       6 scan (most members looked at per pass), 7 owner, 8 lock ttl ms,
--       9 '1' to return each job's fields
-- Returns: {0} when another worker holds the lock, else {status, job, job, …}, status
--          2 when the head walk stepped over a whole scan of kept jobs (call again at
--          once: there may be more behind them) and 1 otherwise, each job
--          {id, finished score, {field, value, …}} (fields empty unless ARGV[9] is '1').
--
-- A job is past retention when it finished at least max age ago, or when max count or
-- more jobs of its state finished after it. Its own limits (hash field `retention`:
-- "completed age,completed count,failed age,failed count", '' for the queue's) win.
--
-- Two bounded passes find them:
-- * the head pass walks the set from its oldest member. Without their own limits,
--   jobs past retention form a prefix of the set, so the walk stops at the first such
--   job that is not. Jobs kept by limits of their own are stepped over, and a run of
--   them at the very head is remembered (head cursor) so that the next walk starts
--   after them: a few long-kept jobs cannot block the queue's retention.
-- * the sweep walks `retain`, a slice per call, for jobs whose own limits made them
--   due out of order (shorter limits, or kept jobs at the head that are now due).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= ARGV[7] then return {0} end
redis.call('SET', KEYS[5], ARGV[7], 'PX', ARGV[8])

local prefix, state = ARGV[1], ARGV[2]
local qage, qcount = tonumber(ARGV[3]), tonumber(ARGV[4])
local batch, scan = tonumber(ARGV[5]), tonumber(ARGV[6])
local with_fields = ARGV[9] == '1'
local slot = 0
if state == 'failed' then slot = 1 end

local out = {1}
local seen = {}
local n = 0

local function limits(spec)
  local age, count = qage, qcount
  if spec then
    local parts = {}
    for p in string.gmatch(spec .. ',', '([^,]*),') do parts[#parts + 1] = p end
    age = tonumber(parts[slot * 2 + 1]) or qage
    count = tonumber(parts[slot * 2 + 2]) or qcount
  end
  return age, count
end

local function take(id, score)
  seen[id] = true
  n = n + 1
  local fields = {}
  if with_fields then fields = redis.call('HGETALL', prefix .. 'job:' .. id) end
  out[#out + 1] = {id, score, fields}
end

local total = redis.call('ZCARD', KEYS[1])
if total == 0 then
  redis.call('DEL', KEYS[3])
  return out
end

-- Head pass. The head cursor is "score|id" of the last job of the run of kept jobs at
-- the head; the walk goes on after it (by rank, so that many jobs finished in the same
-- millisecond cannot hold it in place). Only jobs that finished before this
-- millisecond are stepped over for good: a job finishing later sorts after them.
-- With no job of limits of its own left, there is nothing to step over.
local rows, rank
local cur = false
if redis.call('EXISTS', KEYS[2]) == 1 then
  cur = redis.call('GET', KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
if cur then
  local sep = string.find(cur, '|', 1, true)
  local r = redis.call('ZRANK', KEYS[1], string.sub(cur, sep + 1))
  if r then
    rank = r + 1
    rows = redis.call('ZRANGE', KEYS[1], rank, rank + scan - 1, 'WITHSCORES')
  else
    -- That job left: go on from its finish time (ties before it are walked again).
    rows = redis.call('ZRANGEBYSCORE', KEYS[1], string.sub(cur, 1, sep - 1), '+inf', 'WITHSCORES', 'LIMIT', 0, scan)
    if #rows > 0 then rank = redis.call('ZRANK', KEYS[1], rows[1]) end
  end
else
  rank = 0
  rows = redis.call('ZRANGE', KEYS[1], 0, scan - 1, 'WITHSCORES')
end
if #rows > 0 then
  local skip = false
  local advancing = true
  for i = 1, #rows, 2 do
    local id, score = rows[i], rows[i + 1]
    local newer = total - 1 - (rank + (i - 1) / 2)
    local spec = redis.call('HGET', prefix .. 'job:' .. id, 'retention')
    local age, count = limits(spec)
    if now - tonumber(score) >= age or newer >= count then
      take(id, score)
      advancing = false
      if n >= batch then break end
    elseif spec then
      if advancing and tonumber(score) < now then
        skip = score .. '|' .. id
      else
        advancing = false
      end
    else
      break
    end
  end
  if skip then
    redis.call('SET', KEYS[3], skip)
    if advancing and #rows >= scan * 2 then out[1] = 2 end
  end
end

-- Sweep of the jobs with limits of their own.
if n < batch and redis.call('EXISTS', KEYS[2]) == 1 then
  local after = redis.call('GET', KEYS[4]) or '-inf'
  local own = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. after, '+inf', 'WITHSCORES', 'LIMIT', 0, scan)
  local last = false
  local full = false
  for i = 1, #own, 2 do
    local id = own[i]
    last = own[i + 1]
    local v = redis.call('HMGET', prefix .. 'job:' .. id, 'state', 'retention')
    if not v[1] then
      redis.call('ZREM', KEYS[2], id)
    elseif v[1] == state and not seen[id] then
      local score = redis.call('ZSCORE', KEYS[1], id)
      if score then
        local age, count = limits(v[2])
        local newer = redis.call('ZREVRANK', KEYS[1], id)
        if now - tonumber(score) >= age or newer >= count then
          take(id, score)
          if n >= batch then
            full = true
            break
          end
        end
      end
    end
  end
  if full or #own >= scan * 2 then
    redis.call('SET', KEYS[4], last)
  else
    redis.call('DEL', KEYS[4])
  end
end
return out

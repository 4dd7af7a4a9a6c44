-- Marks leased jobs as started: their handlers are about to run, and the attempt counts.
--
-- The fetch script leases a job without counting an attempt, so a fetch whose reply
-- is lost (a timeout, a dropped connection) costs the job nothing: its lease expires
-- and the rescue puts it back unstarted. The worker calls this before it runs the
-- handlers, in one call per fetched batch. It is idempotent per lease: sending it
-- again after a lost reply counts nothing twice.
--
-- KEYS: 1 active
-- ARGV: 1 key prefix, 2 lease ms, then pairs of (id, lease token)
-- A start also renews the lease, so a slow start cannot eat into the handler's lease.
-- Returns: per pair, the attempt number, or 0 when the lease is no longer this
--          worker's (the job was rescued, removed, or leased again): do not run it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%d', now)
local prefix = ARGV[1]
local expiry = string.format('%d', now + tonumber(ARGV[2]))
local out = {}
for i = 3, #ARGV, 2 do
  local jk = prefix .. 'job:' .. ARGV[i]
  local token = ARGV[i + 1]
  local v = redis.call('HMGET', jk, 'lease', 'state', 'attempts', 'started')
  if v[1] == token and v[2] == 'active' then
    local attempt = tonumber(v[3] or 0)
    if v[4] ~= token then
      attempt = attempt + 1
      redis.call('HSET', jk, 'attempts', string.format('%d', attempt), 'started', token,
        'started_at', now_s)
    end
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
    out[#out + 1] = attempt
  else
    out[#out + 1] = 0
  end
end
return out

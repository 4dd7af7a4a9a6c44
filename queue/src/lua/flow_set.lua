-- Sets a queue's flow limits (rate limit and max_active), and wakes its workers so
-- the change holds at once.
--
-- KEYS: 1 flow, 2 sleep, 3 capwait
-- ARGV: 1 rate ('keep', 'none', or 'n:ms:burst'), 2 max_active ('keep', 'none' or n),
--       3 set by ('api' or 'config'), 4 only if not set by the API ('1' or '0'),
--       5 queue name, 6 wake channel
-- A new rate starts with a full bucket of the new burst only if there was none
-- before; otherwise the level is kept (capped at the new burst), so raising a limit
-- cannot hand out a burst the old limit had already spent.
-- Returns: 1 if written, 0 if skipped (ARGV 4 and an admin's setting stands).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = string.format('%d', now)
if ARGV[4] == '1' and redis.call('HGET', KEYS[1], 'set_by') == 'api' then
  return 0
end
if ARGV[1] == 'none' then
  redis.call('HDEL', KEYS[1], 'rate_n', 'rate_ms', 'burst', 'level', 'ts')
elseif ARGV[1] ~= 'keep' then
  local n, ms, burst = string.match(ARGV[1], '^(%d+):(%d+):(%d+)$')
  local old = redis.call('HMGET', KEYS[1], 'rate_n', 'rate_ms', 'level', 'ts')
  local cap = tonumber(burst) * tonumber(ms)
  local level = cap
  if old[1] and old[3] then
    -- Carry the old level over in the new units, refilled up to now at the old rate.
    local o_n, o_ms = tonumber(old[1]), tonumber(old[2])
    local lv = tonumber(old[3]) + math.max(0, now - tonumber(old[4] or now)) * o_n
    level = math.min(cap, math.floor(lv / o_ms * tonumber(ms)))
  end
  redis.call('HSET', KEYS[1], 'rate_n', n, 'rate_ms', ms, 'burst', burst,
    'level', string.format('%d', level), 'ts', now_s)
end
if ARGV[2] == 'none' then
  redis.call('HDEL', KEYS[1], 'max_active')
elseif ARGV[2] ~= 'keep' then
  redis.call('HSET', KEYS[1], 'max_active', ARGV[2])
end
redis.call('HSET', KEYS[1], 'set_by', ARGV[3], 'set_at', now_s)
redis.call('DEL', KEYS[2], KEYS[3])
-- A channel that starts with '{' is the queue's shard channel (on a cluster).
redis.call(string.byte(ARGV[6]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[6], ARGV[5])
return 1

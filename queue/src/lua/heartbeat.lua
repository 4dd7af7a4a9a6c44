-- Records that a worker is alive, or (with ttl 0) that it stopped.
--
-- KEYS: 1 workers
-- ARGV: 1 key prefix, 2 worker id, 3 info (JSON object), 4 ttl ms (0: deregister)
-- Entries older than ten ttls are pruned, so crashed workers do not pile up.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local wk = ARGV[1] .. 'worker:' .. ARGV[2]
if ttl == 0 then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', wk)
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('SET', wk, ARGV[3], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * ttl)
return 1

-- Takes one token from a key's bucket, refilling it first for the time since the last call.
--
-- A bucket holds at most `burst` tokens and gains `rate` per second. It lives in one hash
-- (tokens, ts) that expires once it would be full again, so idle keys cost nothing.
-- Redis's own clock is used, so API processes with skewed clocks share buckets fairly.
--
-- KEYS: 1 the bucket
-- ARGV: 1 rate (tokens per second, > 0), 2 burst (>= 1)
-- Returns: {1, 0} when a token was taken, {0, ms until one is available} otherwise.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}

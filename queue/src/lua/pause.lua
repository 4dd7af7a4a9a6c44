-- Pauses or resumes a queue. The fetch script refuses to lease jobs of a paused queue.
--
-- KEYS: 1 paused flag, 2 events
-- ARGV: 1 '1' to pause or '0' to resume, 2 events maxlen, 3 queue name, 4 wake channel
-- Returns: 1 if the state changed, 0 if it already was as asked.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local changed
local kind
if ARGV[1] == '1' then
  changed = redis.call('SET', KEYS[1], now, 'NX') and 1 or 0
  kind = 'queue:paused'
else
  changed = redis.call('DEL', KEYS[1])
  kind = 'queue:resumed'
  -- Wake every worker: they went to sleep on the paused queue.
  -- A channel that starts with '{' is the queue's shard channel (on a cluster).
  redis.call(string.byte(ARGV[4]) == 123 and 'SPUBLISH' or 'PUBLISH', ARGV[4], ARGV[3])
end
if changed == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
    'type', kind, 'queue', ARGV[3], 'job_id', '', 'attempt', 0,
    'progress', 0, 'message', '', 'data', '{}', 'ts', now)
end
return changed

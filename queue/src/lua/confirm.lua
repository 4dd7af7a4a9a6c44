-- Confirms that a worker has a fetched batch in hand: its handlers are about to run.
--
-- fetch.lua counts the attempts when it leases and leaves the batch unconfirmed.
-- The worker calls this once per batch, before any handler runs, so a batch whose
-- reply was lost (never confirmed) costs nothing, and one whose handler killed its
-- worker (confirmed) counts, and the rescue fails a poison pill as 'stalled'
-- instead of running it forever. One GET and one DEL: the per-job work stays in the
-- fetch. Idempotent: sent again after a lost reply, it changes nothing.
--
-- KEYS: 1 the worker's unconfirmed batch (`{ns:q}:unconfirmed:<worker>`; declared,
--       so a cluster runs the script on the queue's master)
-- ARGV: 1 fetch sequence number
-- Returns: 1
local pk = KEYS[1]
local pend = redis.call('GET', pk)
if pend and string.match(pend, '^%S+') == ARGV[1] then
  redis.call('DEL', pk)
end
return 1

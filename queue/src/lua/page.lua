-- One page of a state's jobs, in that state's natural order, resuming after a cursor.
--
-- KEYS: 1 the state's sorted set
-- ARGV: 1 '1' for newest first, 2 cursor job id ('' for the first page), 3 cursor score, 4 limit
-- The cursor is the last job of the previous page. If it is still in the set the page
-- starts right after it; if it has moved on, the page starts after its score.
-- Returns: flat pairs of (id, score).
local rev = ARGV[1] == '1'
local limit = tonumber(ARGV[4])
if ARGV[2] == '' then
  if rev then
    return redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'REV', 'WITHSCORES')
  end
  return redis.call('ZRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
end
local rank
if rev then rank = redis.call('ZREVRANK', KEYS[1], ARGV[2]) else rank = redis.call('ZRANK', KEYS[1], ARGV[2]) end
if rank then
  if rev then
    return redis.call('ZRANGE', KEYS[1], rank + 1, rank + limit, 'REV', 'WITHSCORES')
  end
  return redis.call('ZRANGE', KEYS[1], rank + 1, rank + limit, 'WITHSCORES')
end
if rev then
  return redis.call('ZRANGE', KEYS[1], '(' .. ARGV[3], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit, 'WITHSCORES')
end
return redis.call('ZRANGE', KEYS[1], '(' .. ARGV[3], '+inf', 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')

-- One PHP slot on a node, for work admitted without one (a cache purge a direct write could not do).
-- KEYS: PHP slots
-- ARGV: owner, hold ms, now ms, cap
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[1])
return 1

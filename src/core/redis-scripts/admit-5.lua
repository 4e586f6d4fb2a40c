-- Whether a target may start now (see gate.ts): nothing more for a cancelled or braked run; otherwise the instance
-- lock, a slot on its database server and, for work through Moodle's PHP, a PHP slot on its node, all or none.
-- KEYS: cancel flag, failure count, instance lock, server slots, PHP slots
-- ARGV: failure limit, job id (the owner), hold ms, now ms, server cap, PHP cap (0 takes none)
if redis.call('EXISTS', KEYS[1]) == 1 then return 'cancelled' end
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures > tonumber(ARGV[1]) then return 'braked' end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[2] then return 'locked' end
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if not redis.call('ZSCORE', KEYS[4], ARGV[2]) and redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 'busy' end
local php = tonumber(ARGV[6])
if php > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if not redis.call('ZSCORE', KEYS[5], ARGV[2]) and redis.call('ZCARD', KEYS[5]) >= php then return 'busy' end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), ARGV[2])
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
return 'go'

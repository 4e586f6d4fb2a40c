-- A lock's lease extended only by its holder.
-- KEYS: the lock
-- ARGV: the holder's token, the new lease in ms
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0

-- Gives back what admit took for a job: its instance lock (when still its own) and its slots.
-- KEYS: instance lock, server slots, PHP slots
-- ARGV: job id (the owner)
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1

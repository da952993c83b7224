-- Deletes an in-progress record if it still carries the attempt's token, and wakes its waiters.
-- KEYS[1] the record; KEYS[2], only when the store keeps status lookups, the index. ARGV[1] token,
-- ARGV[2] index member (read only with KEYS[2]), ARGV[3] publish command, ARGV[4] channel (published only if a
-- waiter marked the record). Returns 1 when released, 0 when the record is not this attempt's (or not in progress).
local record = redis.call('HMGET', KEYS[1], 's', 't', 'w')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[2]) end
if record[3] then redis.call(ARGV[3], ARGV[4], 'released') end
return 1

-- Renews the lease of an in-progress record if it still carries the attempt's token.
-- KEYS[1] the record; KEYS[2], only when the store keeps status lookups, the index. ARGV[1] token,
-- ARGV[2] lease ms, ARGV[3] grace ms.
-- Returns 1 when renewed, 0 when the record is no longer this attempt's.
local record = redis.call('HMGET', KEYS[1], 's', 't', 'x')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then return 0 end
local left = redis.call('PTTL', KEYS[1])
local lease = tonumber(ARGV[2])
local expires_in = left - (tonumber(record[3]) or 0)
-- The key lives until the later of the new lease's end and the record's expiry, plus the grace; never less than it
-- has left (the record's expiry plus the grace is never later than the key's end, so that one needs no term).
local life = math.max(left, lease + tonumber(ARGV[3]))
if life > left then
  redis.call('PEXPIRE', KEYS[1], life)
  if KEYS[2] then redis.call('PEXPIRE', KEYS[2], life, 'GT') end
end
-- Both deadlines again from the key's end, which may have moved.
redis.call('HSET', KEYS[1], 'x', life - expires_in, 'y', life - lease)
return 1

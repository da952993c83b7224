-- Renews the lease of an in-progress record if it still carries the attempt's token.
-- KEYS[1] the record, KEYS[2] the index. ARGV[1] token, ARGV[2] lease ms, ARGV[3] grace ms.
-- Returns 1 when renewed, 0 when the record is no longer this attempt's.
local record = redis.call('HMGET', KEYS[1], 's', 't', 'e')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local locked = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'l', locked)
local gone = math.max(locked, tonumber(record[3]) or 0) + tonumber(ARGV[3])
if redis.call('PEXPIRETIME', KEYS[1]) < gone then redis.call('PEXPIREAT', KEYS[1], gone) end
if redis.call('PEXPIRETIME', KEYS[2]) < gone then redis.call('PEXPIREAT', KEYS[2], gone) end
return 1

-- Renews the lease of an in-progress record if it still carries the attempt's token.
-- KEYS[1] the record; KEYS[2], only when the store keeps status lookups, the index. ARGV[1] token,
-- ARGV[2] lease ms, ARGV[3] grace ms.
-- Returns 1 when renewed, 0 when the record is no longer this attempt's.
local record = redis.call('HMGET', KEYS[1], 's', 't', 'e')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local locked = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'l', locked)
-- Both keys have an expiry (the claim set it): GT extends it, never shortens it.
local gone = math.max(locked, tonumber(record[3]) or 0) + tonumber(ARGV[3])
redis.call('PEXPIREAT', KEYS[1], gone, 'GT')
if KEYS[2] then redis.call('PEXPIREAT', KEYS[2], gone, 'GT') end
return 1

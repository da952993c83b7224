-- Reads a live record. KEYS[1] the record. ARGV[1] '1' when the reader is a waiter (subscribed already): an
-- in-progress record is then marked, so that its completion or release publishes (they publish only when marked).
-- Returns nil when absent or expired, else {fingerprint, state, lease remaining ms, status, headers, body}.
local record = redis.call('HMGET', KEYS[1], 's', 'f', 'l', 'e', 'st', 'h', 'b')
if not record[1] then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state, locked, expires = record[1], tonumber(record[3]) or 0, tonumber(record[4]) or 0
if expires <= now and (state == 'c' or locked <= now) then return false end
local remaining = 0
if state == 'p' then
  remaining = math.max(0, locked - now)
  if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'w', '1') end
end
return {record[2], state, remaining, record[5] or false, record[6] or false, record[7] or false}

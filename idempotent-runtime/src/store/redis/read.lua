-- Reads a live record, of layout 3 or of layout 2 (the old one, served until its records expire). KEYS[1] the
-- record. ARGV[1] '1' when the reader is a waiter (subscribed already): an in-progress record is then marked, so
-- that its completion or release publishes (they publish only when marked).
-- Returns nil when absent or expired, else {fingerprint, state, lease remaining ms, status, headers, body}.
local record = redis.call('HMGET', KEYS[1], 's', 'f', 'x', 'y', 'st', 'h', 'b', 'e', 'l')
if not record[1] then return false end
local state, expires_in, locked_in = record[1], 0, 0
if record[8] then
  -- Layout 2: the expiry and the lease's end in ms since the epoch, by Redis's clock.
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  expires_in, locked_in = tonumber(record[8]) - now, (tonumber(record[9]) or 0) - now
else
  local left = redis.call('PTTL', KEYS[1])
  expires_in, locked_in = left - (tonumber(record[3]) or 0), left - (tonumber(record[4]) or 0)
end
if expires_in <= 0 and (state == 'c' or locked_in <= 0) then return false end
local remaining = 0
if state == 'p' then
  remaining = math.max(0, locked_in)
  if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'w', '1') end
end
return {record[2], state, remaining, record[5] or false, record[6] or false, record[7] or false}

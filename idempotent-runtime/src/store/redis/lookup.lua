-- The most recent live record of a (scope, key), on any route and method, for status lookups; records of layout 3
-- or of layout 2 (the old one). KEYS[1] the index; ARGV[1] the prefix of its records' keys (a member completes it:
-- same hash tag, same slot).
-- Returns nil, or {member, state, lease remaining ms, created ms, completed ms, status}. Forgets gone members.
-- The clock, read once and only for a record of layout 2 (layout 3 judges by the key's PTTL).
local now = false
local function clock()
  if not now then
    local time = redis.call('TIME')
    now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return now
end
local best, best_created = false, -1
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. member
  local record = redis.call('HMGET', key, 's', 'x', 'y', 'c', 'd', 'st', 'e', 'l')
  if not record[1] then
    redis.call('SREM', KEYS[1], member)
  else
    local state, expires_in, locked_in = record[1], 0, 0
    if record[7] then
      -- Layout 2: absolute deadlines.
      expires_in, locked_in = tonumber(record[7]) - clock(), (tonumber(record[8]) or 0) - clock()
    else
      local left = redis.call('PTTL', key)
      expires_in, locked_in = left - (tonumber(record[2]) or 0), left - (tonumber(record[3]) or 0)
    end
    local created = tonumber(record[4]) or 0
    local live = not (expires_in <= 0 and (state == 'c' or locked_in <= 0))
    if live and created > best_created then
      local remaining = 0
      if state == 'p' then remaining = math.max(0, locked_in) end
      best, best_created = {member, state, remaining, created, record[5] or false, record[6] or false}, created
    end
  end
end
return best

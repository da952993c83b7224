-- The most recent live record of a (scope, key), on any route and method, for status lookups.
-- KEYS[1] the index; ARGV[1] the prefix of its records' keys (a member completes it: same hash tag, same slot).
-- Returns nil, or {member, state, lease remaining ms, created ms, completed ms, status}. Forgets gone members.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local best, best_created = false, -1
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local record = redis.call('HMGET', ARGV[1] .. member, 's', 'l', 'e', 'c', 'd', 'st')
  if not record[1] then
    redis.call('SREM', KEYS[1], member)
  else
    local state, locked, expires = record[1], tonumber(record[2]) or 0, tonumber(record[3]) or 0
    local created = tonumber(record[4]) or 0
    local live = not (expires <= now and (state == 'c' or locked <= now))
    if live and created > best_created then
      local remaining = 0
      if state == 'p' then remaining = math.max(0, locked - now) end
      best, best_created = {member, state, remaining, created, record[5] or false, record[6] or false}, created
    end
  end
end
return best

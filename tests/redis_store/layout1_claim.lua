-- Claims a record, takes over one whose worker died or that expired, or returns the live record that prevents it.
-- KEYS[1] the record (a hash), KEYS[2] the (scope, key)'s index of records (a set); both share one hash tag.
-- ARGV[1] fingerprint, ARGV[2] token, ARGV[3] lease ms, ARGV[4] ttl ms, ARGV[5] grace ms, ARGV[6] index member.
-- Returns {1, took_over} when acquired, else {0, fingerprint, state, lease remaining ms, status, headers, body}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local record = redis.call('HMGET', KEYS[1], 's', 'f', 'l', 'e', 'st', 'h', 'b')
local took_over = 0
if record[1] then
  local state, locked, expires = record[1], tonumber(record[3]) or 0, tonumber(record[4]) or 0
  -- The take-over rule of every store: a completed record past its ttl, or an in-progress one whose lease lapsed
  -- (its worker died) when it is the same request or past its ttl.
  local lapsed = state == 'p' and locked <= now
  local takeover = (state == 'c' and expires <= now) or (lapsed and (record[2] == ARGV[1] or expires <= now))
  if not takeover then
    local remaining = 0
    if state == 'p' then remaining = math.max(0, locked - now) end
    return {0, record[2], state, remaining, record[5] or false, record[6] or false, record[7] or false}
  end
  redis.call('DEL', KEYS[1])
  took_over = 1
end
local locked = now + tonumber(ARGV[3])
local expires = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p', 'l', locked, 'e', expires, 'c', now)
-- Redis forgets the record a grace period after it expires (it reads as absent from its expiry on).
local gone = math.max(locked, expires) + tonumber(ARGV[5])
redis.call('PEXPIREAT', KEYS[1], gone)
redis.call('SADD', KEYS[2], ARGV[6])
if redis.call('PEXPIRETIME', KEYS[2]) < gone then redis.call('PEXPIREAT', KEYS[2], gone) end
return {1, took_over}

-- Claims a record, takes over one whose worker died or that expired, or returns the live record that prevents it.
-- KEYS[1] the record (a hash); KEYS[2], only when the store keeps status lookups, the (scope, key)'s index of
-- records (a set, same hash tag). ARGV[1] fingerprint, ARGV[2] token, ARGV[3] lease ms, ARGV[4] ttl ms,
-- ARGV[5] grace ms, ARGV[6] index member (read only with KEYS[2]).
-- Returns {1, took_over} when acquired, else {0, fingerprint, state, lease remaining ms, status, headers, body}
-- (the response's fields only for a completed record).
-- A fresh key runs HMGET, TIME, HSET, PEXPIREAT: the decision's four fields first, the response's only to replay.
-- The record's fields: f fingerprint, t token, s state, l lease end, e expiry (ms since the epoch, Redis's clock),
-- c created (only with the index), w a waiter's mark; once completed d done (only with the index), st, h, b.
local record = redis.call('HMGET', KEYS[1], 's', 'f', 'l', 'e')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local took_over = 0
if record[1] then
  local state, locked, expires = record[1], tonumber(record[3]) or 0, tonumber(record[4]) or 0
  -- The take-over rule of every store: a completed record past its ttl, or an in-progress one whose lease lapsed
  -- (its worker died) when it is the same request or past its ttl.
  local lapsed = state == 'p' and locked <= now
  local takeover = (state == 'c' and expires <= now) or (lapsed and (record[2] == ARGV[1] or expires <= now))
  if not takeover then
    if state == 'c' then
      local response = redis.call('HMGET', KEYS[1], 'st', 'h', 'b')
      return {0, record[2], state, 0, response[1] or false, response[2] or false, response[3] or false}
    end
    return {0, record[2], state, math.max(0, locked - now), false, false, false}
  end
  -- Whole: a response field or a waiter's mark left behind would belong to the new attempt.
  redis.call('DEL', KEYS[1])
  took_over = 1
end
local locked = now + tonumber(ARGV[3])
local expires = now + tonumber(ARGV[4])
-- The creation time is read only by status lookups, so only a store that keeps them writes it (writing a number
-- costs Redis its formatting: about 5 % of a fresh claim's time in the script).
if KEYS[2] then
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p', 'l', locked, 'e', expires, 'c', now)
else
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p', 'l', locked, 'e', expires)
end
-- Redis forgets the record a grace period after it expires (it reads as absent from its expiry on).
local gone = math.max(locked, expires) + tonumber(ARGV[5])
redis.call('PEXPIREAT', KEYS[1], gone)
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[6])
  -- The index lives as long as its longest-lived record: NX gives a new index its expiry, GT only ever extends
  -- it (GT alone would not set one: Redis treats a key without expiry as expiring never).
  if redis.call('PEXPIREAT', KEYS[2], gone, 'NX') == 0 then redis.call('PEXPIREAT', KEYS[2], gone, 'GT') end
end
return {1, took_over}

-- Claims a record, takes over one whose worker died or that expired, or returns the live record that prevents it.
-- KEYS[1] the record (a hash); KEYS[2], only when the store keeps status lookups, the (scope, key)'s index of
-- records (a set, same hash tag). ARGV[1] fingerprint, ARGV[2] token, ARGV[3] the key's life in ms (the later of
-- lease and ttl, plus the grace), ARGV[4] ms from the record's expiry to the key's end, ARGV[5] ms from the lease's
-- end to the key's end, ARGV[6] index member (read only with KEYS[2]).
-- Returns {1, took_over} when acquired, else {0, fingerprint, state, lease remaining ms, status, headers, body}
-- (the response's fields only for a completed record).
-- The record's fields (layout 3): f fingerprint, t token, s state, x ms from its expiry to the key's end, y ms from
-- its lease's end to the key's end (in progress), w a waiter's mark, c created (only with the index, ms since the
-- epoch by Redis's clock); once completed d done (only with the index), st, h, b. Deadlines are kept relative to
-- the key's own expiry (PTTL), so a fresh claim reads no clock and formats no number: it runs PTTL, HSET,
-- PEXPIRE, every argument a string the store sent. PTTL first, not the HMGET of four fields that a record needs:
-- most claims find none, a missing key's four nils cost Lua more than one integer, and a claim that finds a
-- record needs the PTTL anyway (-2: no key; -1, a key without expiry, which only a hand-made PERSIST leaves, reads
-- as expired).
local left = redis.call('PTTL', KEYS[1])
local record = false
if left ~= -2 then record = redis.call('HMGET', KEYS[1], 's', 'f', 'x', 'y') end
local took_over = 0
if record and record[1] then
  local state = record[1]
  local expires_in, locked_in = left - (tonumber(record[3]) or 0), left - (tonumber(record[4]) or 0)
  -- The take-over rule of every store: a completed record past its ttl, or an in-progress one whose lease lapsed
  -- (its worker died) when it is the same request or past its ttl.
  local lapsed = state == 'p' and locked_in <= 0
  local takeover = (state == 'c' and expires_in <= 0) or (lapsed and (record[2] == ARGV[1] or expires_in <= 0))
  if not takeover then
    if state == 'c' then
      local response = redis.call('HMGET', KEYS[1], 'st', 'h', 'b')
      return {0, record[2], state, 0, response[1] or false, response[2] or false, response[3] or false}
    end
    return {0, record[2], state, math.max(0, locked_in), false, false, false}
  end
  -- Whole: a response field or a waiter's mark left behind would belong to the new attempt.
  redis.call('DEL', KEYS[1])
  took_over = 1
end
if KEYS[2] then
  -- The creation time is read only by status lookups, so only a store that keeps them reads the clock for it.
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p', 'x', ARGV[4], 'y', ARGV[5], 'c', now)
else
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2], 's', 'p', 'x', ARGV[4], 'y', ARGV[5])
end
-- Redis forgets the record a grace period after it expires (it reads as absent from its expiry on).
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[6])
  -- The index lives as long as its longest-lived record: NX gives a new index its expiry, GT only ever extends
  -- it (GT alone would not set one: Redis treats a key without expiry as expiring never).
  if redis.call('PEXPIRE', KEYS[2], ARGV[3], 'NX') == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3], 'GT') end
end
return {1, took_over}

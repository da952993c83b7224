-- Stores the response of an in-progress record if it still carries the attempt's token, and wakes its waiters.
-- KEYS[1] the record; KEYS[2], only when the store keeps status lookups, the index. ARGV[1] token, ARGV[2] the
-- key's life in ms from now (ttl plus grace), ARGV[3] grace ms (from the record's expiry to the key's end),
-- ARGV[4] status, ARGV[5] headers, ARGV[6] '1' when a body is stored, ARGV[7] body, ARGV[8] publish command,
-- ARGV[9] channel.
-- Waiters are woken only if one marked the record (read.lua): most completions have none, and skip the publish.
-- Returns 1 when stored, 0 when fenced. A record this token already completed answers 1 and is left alone: a
-- completion retried after its answer was lost must not be reported fenced (the Store::complete contract).
local record = redis.call('HMGET', KEYS[1], 's', 't', 'w')
if record[2] ~= ARGV[1] then return 0 end
if record[1] == 'c' then return 1 end
if record[1] ~= 'p' then return 0 end
-- One write; the lease's field stays, unread once the state is 'c'.
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 's', 'c', 'x', ARGV[3], 'st', ARGV[4], 'h', ARGV[5], 'b', ARGV[7])
else
  redis.call('HSET', KEYS[1], 's', 'c', 'x', ARGV[3], 'st', ARGV[4], 'h', ARGV[5])
end
-- The completion time, like the creation time, only for status lookups.
if KEYS[2] then
  local time = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'd', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
end
-- Exactly the ttl (plus the grace) from now, also when that is sooner than the claim's end (a lease longer than the
-- ttl).
redis.call('PEXPIRE', KEYS[1], ARGV[2])
-- The claim gave the index an expiry; it only ever grows, as the index lives as long as its longest-lived record.
if KEYS[2] then redis.call('PEXPIRE', KEYS[2], ARGV[2], 'GT') end
if record[3] then redis.call(ARGV[8], ARGV[9], 'done') end
return 1

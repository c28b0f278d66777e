--[[
  Queue.clean(grace, limit, "completed"|"failed"): removes the finished jobs
  whose finishedOn (the set's score) is at or before a cutoff, with all their
  keys, oldest first, and emits one `cleaned` event with the count (no
  `removed` events, as in BullMQ).

  KEYS[1] completed or failed set   KEYS[2] events
  ARGV[1] job key prefix   ARGV[2] cutoff (ms)   ARGV[3] limit (0 = no limit)

  Returns the removed ids.
]]
local rcall = redis.call
local limit = tonumber(ARGV[3]) or 0
local ids
if limit > 0 then
  ids = rcall("ZRANGEBYSCORE", KEYS[1], 0, ARGV[2], "LIMIT", 0, limit)
else
  ids = rcall("ZRANGEBYSCORE", KEYS[1], 0, ARGV[2])
end
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  rcall("DEL", key, key .. ":logs", key .. ":lock", key .. ":dependencies", key .. ":processed",
        key .. ":failed", key .. ":unsuccessful")
end
-- ZREM in slices: unpack has a stack limit (about 8000 values).
for i = 1, #ids, 5000 do
  rcall("ZREM", KEYS[1], unpack(ids, i, math.min(i + 4999, #ids)))
end
rcall("XADD", KEYS[2], "*", "event", "cleaned", "count", #ids)
return ids

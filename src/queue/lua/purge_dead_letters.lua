--[[
  Deletes up to ARGV[2] jobs of the dead-letter queue's failed set with all
  their keys, oldest first, and emits `cleaned` with the count on the DLQ's
  stream (nothing when the set was empty).

  KEYS[1] DLQ failed set   KEYS[2] DLQ events
  ARGV[1] DLQ job key prefix   ARGV[2] batch size

  Returns the number removed (call again while it equals the batch size).
]]
local rcall = redis.call
local ids = rcall("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then
  return 0
end
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  rcall("DEL", key, key .. ":logs", key .. ":lock")
end
rcall("ZREM", KEYS[1], unpack(ids))
rcall("XADD", KEYS[2], "*", "event", "cleaned", "count", #ids)
return #ids

--[[
  Lists a page of a finished set (failed or completed), newest first, as
  Queue.getFailed(start, end) does (ZREVRANGE on a zset scored by finishedOn).

  KEYS[1] the set (e.g. Q:failed)
  ARGV[1] job key prefix   ARGV[2] start   ARGV[3] stop (inclusive, -1 = end)

  Returns {id, {name, data, failedReason, atm, attemptsMade, finishedOn}, ...};
  a member whose hash is gone comes back with all fields false (nil).
]]
local rcall = redis.call
local out = {}
local ids = rcall("ZREVRANGE", KEYS[1], ARGV[2], ARGV[3])
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = rcall("HMGET", ARGV[1] .. id, "name", "data", "failedReason", "atm",
                        "attemptsMade", "finishedOn")
end
return out

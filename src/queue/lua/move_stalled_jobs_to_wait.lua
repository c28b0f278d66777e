--[[
  The stalled check (BullMQ's moveStalledJobsToWait). Two passes: a pass first
  recovers the ids marked by the previous pass whose lock has lapsed (a lock
  renewal removes the mark), then marks every job now active. Throttled: while
  `stalled-check` exists other workers skip the check.

  KEYS[1] stalled   KEYS[2] wait     KEYS[3] active   KEYS[4] stalled-check
  KEYS[5] meta      KEYS[6] marker   KEYS[7] events
  ARGV[1] max stalled count   ARGV[2] job key prefix   ARGV[3] now (ms)
  ARGV[4] check interval (ms)

  Returns the ids put back at the front of wait.
]]
local rcall = redis.call
local maxStalledCount = tonumber(ARGV[1])
local prefix = ARGV[2]

if rcall("EXISTS", KEYS[4]) == 1 then
  return {}
end
rcall("SET", KEYS[4], ARGV[3], "PX", ARGV[4])

local maxEvents = rcall("HGET", KEYS[5], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[5], "opts.maxLenEvents", maxEvents)
end
rcall("XTRIM", KEYS[7], "MAXLEN", "~", maxEvents)

local recovered = {}
local candidates = rcall("SMEMBERS", KEYS[1])
if #candidates > 0 then
  rcall("DEL", KEYS[1])
  for _, id in ipairs(candidates) do
    if string.sub(id, 1, 2) == "0:" then
      rcall("LREM", KEYS[3], 1, id)
    else
      local jobKey = prefix .. id
      if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", KEYS[3], 1, id) > 0 then
        local stalledCount = rcall("HINCRBY", jobKey, "stc", 1)
        if stalledCount > maxStalledCount then
          -- The next worker to fetch it fails it at once with this reason.
          rcall("HSET", jobKey, "defa", "job stalled more than allowable limit")
        end
        -- Front of wait: it has waited long enough already.
        rcall("RPUSH", KEYS[2], id)
        local meta = rcall("HMGET", KEYS[5], "paused", "concurrency")
        local blocked = meta[1] ~= false
        if not blocked and meta[2] then
          blocked = rcall("LLEN", KEYS[3]) >= tonumber(meta[2])
        end
        if not blocked then
          rcall("ZADD", KEYS[6], 0, "0")
        end
        rcall("XADD", KEYS[7], "*", "event", "waiting", "jobId", id, "prev", "active")
        rcall("XADD", KEYS[7], "*", "event", "stalled", "jobId", id)
        table.insert(recovered, id)
      end
    end
  end
end

-- Mark every active job; a renewal before the next pass clears the mark.
local active = rcall("LRANGE", KEYS[3], 0, -1)
for from = 1, #active, 7000 do
  rcall("SADD", KEYS[1], unpack(active, from, math.min(from + 6999, #active)))
end
return recovered

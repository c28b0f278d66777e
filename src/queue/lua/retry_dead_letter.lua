--[[
  Re-runs one dead-letter job in the main queue as a fresh attempt, then
  deletes its DLQ copy, atomically.
  - The main job hash still exists and sits in `failed`: it is reprocessed as
    job.retry() does (BullMQ's reprocessJob with both resets): ZREM failed,
    HDEL finishedOn processedOn failedReason atm ats, back to wait (or
    prioritized), marker unless paused/maxed, `waiting prev=failed`.
  - The main job is gone (trimmed by removeOnFail or cleaned): it is added
    again with the same id, name and data and the given opts, as an add would
    (INCR id, `added`, LPUSH wait, marker, `waiting`).

  KEYS[1] DLQ failed   KEYS[2] DLQ events   KEYS[3] DLQ job key
  KEYS[4] job key      KEYS[5] failed       KEYS[6] wait        KEYS[7] meta
  KEYS[8] active       KEYS[9] marker       KEYS[10] prioritized KEYS[11] pc
  KEYS[12] events      KEYS[13] id counter
  ARGV[1] job id   ARGV[2] now (ms)   ARGV[3] opts JSON for a re-added job

  Returns 1 reprocessed, 2 re-added, -1 no DLQ copy, -3 the main job exists
  but is not failed (it is waiting, running or done; the copy is kept).
]]
local rcall = redis.call
local jobId = ARGV[1]
local dlqKey = KEYS[3]
local jobKey = KEYS[4]

if rcall("EXISTS", dlqKey) == 0 then
  rcall("ZREM", KEYS[1], jobId)
  return -1
end

local maxEvents = rcall("HGET", KEYS[7], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[7], "opts.maxLenEvents", maxEvents)
end

local meta = rcall("HMGET", KEYS[7], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[8]) >= tonumber(meta[2])
end

local result
if rcall("EXISTS", jobKey) == 1 then
  if rcall("ZREM", KEYS[5], jobId) == 0 then
    return -3
  end
  rcall("HDEL", jobKey, "finishedOn", "processedOn", "failedReason", "atm", "ats")
  local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
  if priority == 0 then
    rcall("LPUSH", KEYS[6], jobId)
  else
    local counter = rcall("INCR", KEYS[11])
    rcall("ZADD", KEYS[10], priority * 4294967296 + (counter % 4294967296), jobId)
  end
  rcall("XADD", KEYS[12], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId,
        "prev", "failed")
  result = 1
else
  -- A dangling member (hash deleted by hand) must not survive the re-add.
  rcall("ZREM", KEYS[5], jobId)
  local src = rcall("HMGET", dlqKey, "name", "data")
  local name = src[1] or ""
  rcall("INCR", KEYS[13])
  rcall("HSET", jobKey, "name", name, "data", src[2] or "{}", "opts", ARGV[3],
        "timestamp", ARGV[2], "delay", 0, "priority", 0)
  rcall("XADD", KEYS[12], "*", "event", "added", "jobId", jobId, "name", name)
  rcall("LPUSH", KEYS[6], jobId)
  rcall("XADD", KEYS[12], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId)
  result = 2
end
if not blocked then
  rcall("ZADD", KEYS[9], 0, "0")
end

rcall("DEL", dlqKey, dlqKey .. ":logs", dlqKey .. ":lock")
rcall("ZREM", KEYS[1], jobId)
rcall("XADD", KEYS[2], "*", "event", "removed", "jobId", jobId, "prev", "failed")
return result

--[[
  Adds one job: BullMQ's standard add (ready at once) or delayed add (delay > 0).
  No flows, priorities or deduplication: conveyor does not produce those.

  KEYS[1] wait      KEYS[2] meta     KEYS[3] id counter
  KEYS[4] delayed   KEYS[5] events   KEYS[6] marker   KEYS[7] active
  ARGV[1] job key prefix ("<prefix>:<queue>:")
  ARGV[2] job id      ARGV[3] name        ARGV[4] timestamp (ms)
  ARGV[5] data JSON   ARGV[6] opts JSON   ARGV[7] delay (ms, 0 = ready now)

  Returns 1 when added, 0 when a job with this id exists (a no-op that only
  emits `duplicated`, as BullMQ does for a custom id).
]]
local rcall = redis.call
local jobId = ARGV[2]
local jobKey = ARGV[1] .. jobId
local timestamp = tonumber(ARGV[4])
local delay = tonumber(ARGV[7]) or 0

-- BullMQ bumps the counter on every add, custom ids and duplicates included.
rcall("INCR", KEYS[3])

local maxEvents = rcall("HGET", KEYS[2], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[2], "opts.maxLenEvents", maxEvents)
end

if rcall("EXISTS", jobKey) == 1 then
  rcall("XADD", KEYS[5], "MAXLEN", "~", maxEvents, "*", "event", "duplicated", "jobId", jobId)
  return 0
end

-- name, data, opts, timestamp, delay and priority are what Node needs to read a job.
rcall("HSET", jobKey, "name", ARGV[3], "data", ARGV[5], "opts", ARGV[6],
      "timestamp", ARGV[4], "delay", delay, "priority", 0)
rcall("XADD", KEYS[5], "*", "event", "added", "jobId", jobId, "name", ARGV[3])

if delay > 0 then
  -- Score = due * 4096 + seq keeps FIFO order among jobs due in the same ms.
  local due = timestamp + delay
  local minScore = due * 4096
  local maxScore = minScore + 4095
  local score = minScore
  local last = rcall("ZREVRANGEBYSCORE", KEYS[4], maxScore, minScore, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    score = math.min(tonumber(last[2]) + 1, maxScore)
  end
  rcall("ZADD", KEYS[4], score, jobId)
  rcall("XADD", KEYS[5], "MAXLEN", "~", maxEvents, "*", "event", "delayed", "jobId", jobId,
        "delay", due)
  -- The "1" marker tells blocked workers when the earliest delayed job is due.
  local first = rcall("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
  if first[2] then
    rcall("ZADD", KEYS[6], tonumber(first[2]) / 4096, "1")
  end
  return 1
end

rcall("LPUSH", KEYS[1], jobId)

-- No wake-up while paused (meta flag) or maxed (global concurrency reached).
local meta = rcall("HMGET", KEYS[2], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[7]) >= tonumber(meta[2])
end
if not blocked then
  rcall("ZADD", KEYS[6], 0, "0")
end
rcall("XADD", KEYS[5], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId)
return 1

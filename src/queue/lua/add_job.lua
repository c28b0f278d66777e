--[[
  Adds one job: BullMQ's standard add (ready at once), delayed add (delay > 0)
  or prioritized add (priority > 0, no delay). No flows or deduplication:
  conveyor does not produce those.

  KEYS[1] wait      KEYS[2] meta     KEYS[3] id counter
  KEYS[4] delayed   KEYS[5] events   KEYS[6] marker   KEYS[7] active
  KEYS[8] prioritized   KEYS[9] pc (priority counter)   KEYS[10] aging
  ARGV[1] job key prefix ("<prefix>:<queue>:")
  ARGV[2] job id      ARGV[3] name        ARGV[4] timestamp (ms)
  ARGV[5] data JSON   ARGV[6] opts JSON   ARGV[7] delay (ms, 0 = ready now)
  ARGV[8] priority (0 = none, else 1..2097151, 1 first)
  ARGV[9] aging due (epoch ms; 0 = none): from then on the prioritized job
          takes part in move_to_active's aging turn (conveyor's own `aging`
          zset, score = due; BullMQ neither reads nor writes it)

  Returns 1 when added, 0 when a job with this id exists (a no-op that only
  emits `duplicated`, as BullMQ does for a custom id).
]]
local rcall = redis.call
local jobId = ARGV[2]
local jobKey = ARGV[1] .. jobId
local timestamp = tonumber(ARGV[4])
local delay = tonumber(ARGV[7]) or 0
local priority = tonumber(ARGV[8]) or 0
local agingDue = tonumber(ARGV[9]) or 0

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
      "timestamp", ARGV[4], "delay", delay, "priority", priority)
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

if priority > 0 then
  -- BullMQ's score: priority * 2^32 + (pc mod 2^32), FIFO within a priority.
  local counter = rcall("INCR", KEYS[9])
  rcall("ZADD", KEYS[8], priority * 4294967296 + (counter % 4294967296), jobId)
  if agingDue > 0 then
    rcall("ZADD", KEYS[10], agingDue, jobId)
  end
else
  rcall("LPUSH", KEYS[1], jobId)
end

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

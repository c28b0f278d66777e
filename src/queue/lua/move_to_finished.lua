--[[
  Moves a leased job out of active for good: completed or failed (BullMQ's
  moveToFinished, without flows, metrics or fetch-next). On a failure it also
  copies the job to the dead-letter queue in the same atomic step.

  KEYS[1] wait        KEYS[2] active      KEYS[3] prioritized   KEYS[4] events
  KEYS[5] stalled     KEYS[6] meta        KEYS[7] completed or failed set
  KEYS[8] job key     KEYS[9] DLQ id      KEYS[10] DLQ failed   KEYS[11] DLQ events
  KEYS[12] DLQ meta
  ARGV[1] job id       ARGV[2] now (ms)
  ARGV[3] "returnvalue" or "failedReason"   ARGV[4] its value
  ARGV[5] "completed" or "failed"           ARGV[6] job key prefix
  ARGV[7] lock token   ARGV[8] retention count (-1 keep all, 0 delete, n keep newest n)
  ARGV[9] opts.attempts                      ARGV[10] stack trace line ("" for none)
  ARGV[11] DLQ job key prefix ("" = no dead-letter copy)

  Returns attemptsMade (>= 1), or -1 job missing, -2 lock missing,
  -3 job not active, -6 lock owned by another token.
]]
local rcall = redis.call
local jobId = ARGV[1]
local jobKey = KEYS[8]
local now = ARGV[2]
local field = ARGV[3]
local value = ARGV[4]
local target = ARGV[5]
local prefix = ARGV[6]
local keep = tonumber(ARGV[8])

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local lockKey = jobKey .. ":lock"
local owner = rcall("GET", lockKey)
if not owner then
  return -2
end
if owner ~= ARGV[7] then
  return -6
end
-- Checked before anything changes, so a refused move leaves no trace.
if rcall("LREM", KEYS[2], -1, jobId) < 1 then
  return -3
end
rcall("DEL", lockKey)
rcall("SREM", KEYS[5], jobId)

local function maxLenEvents(metaKey)
  local n = rcall("HGET", metaKey, "opts.maxLenEvents")
  if not n then
    n = 10000
    rcall("HSET", metaKey, "opts.maxLenEvents", n)
  end
  return n
end

local function removeJobKeys(key)
  rcall("DEL", key, key .. ":logs", key .. ":lock", key .. ":dependencies", key .. ":processed",
        key .. ":failed", key .. ":unsuccessful")
end

-- stacktrace is a JSON array of strings, one entry per failed attempt.
if ARGV[10] ~= "" then
  local trace = {}
  local raw = rcall("HGET", jobKey, "stacktrace")
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" then
      trace = decoded
    end
  end
  table.insert(trace, ARGV[10])
  rcall("HSET", jobKey, "stacktrace", cjson.encode(trace))
end

-- Trim before emitting, so this script's own events survive.
rcall("XTRIM", KEYS[4], "MAXLEN", "~", maxLenEvents(KEYS[6]))

local attemptsMade = rcall("HINCRBY", jobKey, "atm", 1)

-- The dead-letter copy is made before retention may delete the job.
if target == "failed" and ARGV[11] ~= "" then
  local dlqKey = ARGV[11] .. jobId
  local src = rcall("HMGET", jobKey, "name", "data", "stacktrace", "timestamp")
  rcall("INCR", KEYS[9])
  -- A job re-run from the DLQ that fails again replaces its earlier copy.
  removeJobKeys(dlqKey)
  rcall("HSET", dlqKey, "name", src[1] or "", "data", src[2] or "{}", "opts", '{"attempts":1}',
        "timestamp", now, "delay", 0, "priority", 0, "atm", attemptsMade,
        "failedReason", value, "stacktrace", src[3] or "[]", "finishedOn", now,
        "processedOn", now, "origTimestamp", src[4] or now)
  rcall("ZADD", KEYS[10], now, jobId)
  local dlqMax = maxLenEvents(KEYS[12])
  rcall("XADD", KEYS[11], "MAXLEN", "~", dlqMax, "*", "event", "added", "jobId", jobId,
        "name", src[1] or "")
  rcall("XADD", KEYS[11], "MAXLEN", "~", dlqMax, "*", "event", "failed", "jobId", jobId,
        "failedReason", value)
end

if keep ~= 0 then
  rcall("ZADD", KEYS[7], now, jobId)
  rcall("HSET", jobKey, field, value, "finishedOn", now)
  if target == "failed" then
    rcall("HDEL", jobKey, "defa")
  end
  if keep > 0 then
    -- Keep the newest `keep` of the whole set, as BullMQ does.
    local old = rcall("ZREVRANGE", KEYS[7], keep, -1)
    for _, id in ipairs(old) do
      removeJobKeys(prefix .. id)
    end
    if #old > 0 then
      rcall("ZREMRANGEBYRANK", KEYS[7], 0, -(keep + 1))
    end
  end
else
  removeJobKeys(jobKey)
end

rcall("XADD", KEYS[4], "*", "event", target, "jobId", jobId, field, value, "prev", "active")
if target == "failed" and attemptsMade >= (tonumber(ARGV[9]) or 0) then
  rcall("XADD", KEYS[4], "*", "event", "retries-exhausted", "jobId", jobId,
        "attemptsMade", attemptsMade)
end

if rcall("LLEN", KEYS[1]) == 0 and rcall("LLEN", KEYS[2]) == 0 and rcall("ZCARD", KEYS[3]) == 0 then
  rcall("XADD", KEYS[4], "*", "event", "drained")
end
return attemptsMade

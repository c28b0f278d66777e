--[[
  Records a failed attempt that will be retried: with a backoff the job parks
  in delayed (BullMQ's moveToDelayed), with none it goes straight back to wait
  (BullMQ's retryJob). No `failed` event and no entry in the failed set.

  KEYS[1] wait      KEYS[2] active   KEYS[3] prioritized   KEYS[4] events
  KEYS[5] stalled   KEYS[6] meta     KEYS[7] delayed       KEYS[8] marker
  KEYS[9] job key   KEYS[10] pc
  ARGV[1] job id   ARGV[2] now (ms)   ARGV[3] lock token   ARGV[4] backoff ms
  ARGV[5] failedReason (plain text)   ARGV[6] stack trace line ("" for none)

  Returns attemptsMade, or -1 job missing, -2 lock missing, -3 not active,
  -6 lock owned by another token.
]]
local rcall = redis.call
local jobId = ARGV[1]
local jobKey = KEYS[9]
local now = tonumber(ARGV[2])
local backoff = tonumber(ARGV[4]) or 0

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local lockKey = jobKey .. ":lock"
local owner = rcall("GET", lockKey)
if not owner then
  return -2
end
if owner ~= ARGV[3] then
  return -6
end
if rcall("LREM", KEYS[2], -1, jobId) < 1 then
  return -3
end
rcall("DEL", lockKey)
rcall("SREM", KEYS[5], jobId)

local maxEvents = rcall("HGET", KEYS[6], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[6], "opts.maxLenEvents", maxEvents)
end

rcall("HSET", jobKey, "failedReason", ARGV[5])
if ARGV[6] ~= "" then
  local trace = {}
  local raw = rcall("HGET", jobKey, "stacktrace")
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" then
      trace = decoded
    end
  end
  table.insert(trace, ARGV[6])
  rcall("HSET", jobKey, "stacktrace", cjson.encode(trace))
end
local attemptsMade = rcall("HINCRBY", jobKey, "atm", 1)

local meta = rcall("HMGET", KEYS[6], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[2]) >= tonumber(meta[2])
end

if backoff > 0 then
  local due = now + backoff
  local minScore = due * 4096
  local maxScore = minScore + 4095
  local score = minScore
  local last = rcall("ZREVRANGEBYSCORE", KEYS[7], maxScore, minScore, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    score = math.min(tonumber(last[2]) + 1, maxScore)
  end
  rcall("ZADD", KEYS[7], score, jobId)
  rcall("HSET", jobKey, "delay", backoff)
  -- The event's `delay` is the absolute due time; the hash's is the backoff.
  rcall("XADD", KEYS[4], "MAXLEN", "~", maxEvents, "*", "event", "delayed", "jobId", jobId,
        "delay", due)
  if not blocked then
    local first = rcall("ZRANGE", KEYS[7], 0, 0, "WITHSCORES")
    if first[2] then
      rcall("ZADD", KEYS[8], tonumber(first[2]) / 4096, "1")
    end
  end
else
  local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
  if priority == 0 then
    rcall("LPUSH", KEYS[1], jobId)
  else
    local counter = rcall("INCR", KEYS[10])
    rcall("ZADD", KEYS[3], priority * 4294967296 + (counter % 4294967296), jobId)
  end
  if not blocked then
    rcall("ZADD", KEYS[8], 0, "0")
  end
  rcall("XADD", KEYS[4], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId,
        "prev", "active")
end
return attemptsMade

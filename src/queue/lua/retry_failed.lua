--[[
  Moves up to ARGV[3] jobs of the failed set that failed at or before ARGV[2]
  back to wait, oldest first, as Queue.retryJobs({state:"failed"}) does, but
  with job.retry()'s resets so each gets its full attempts again: ZREM failed,
  HDEL finishedOn processedOn failedReason atm ats, LPUSH wait (or
  prioritized), `waiting prev=failed`, one marker unless paused/maxed. Each
  retried job's dead-letter copy is deleted (a new final failure makes a new
  one).

  KEYS[1] failed   KEYS[2] wait   KEYS[3] meta   KEYS[4] active   KEYS[5] marker
  KEYS[6] prioritized   KEYS[7] pc   KEYS[8] events
  KEYS[9] DLQ failed    KEYS[10] DLQ events
  ARGV[1] job key prefix   ARGV[2] cutoff (ms)   ARGV[3] batch size
  ARGV[4] DLQ job key prefix

  Returns {members taken from failed, jobs put back in wait}.
]]
local rcall = redis.call
local prefix = ARGV[1]
local ids = rcall("ZRANGEBYSCORE", KEYS[1], 0, ARGV[2], "LIMIT", 0, tonumber(ARGV[3]))
if #ids == 0 then
  return {0, 0}
end

local maxEvents = rcall("HGET", KEYS[3], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[3], "opts.maxLenEvents", maxEvents)
end
local meta = rcall("HMGET", KEYS[3], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[4]) >= tonumber(meta[2])
end

local moved = 0
for _, id in ipairs(ids) do
  rcall("ZREM", KEYS[1], id)
  local jobKey = prefix .. id
  if rcall("EXISTS", jobKey) == 1 then
    rcall("HDEL", jobKey, "finishedOn", "processedOn", "failedReason", "atm", "ats")
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    if priority == 0 then
      rcall("LPUSH", KEYS[2], id)
    else
      local counter = rcall("INCR", KEYS[7])
      rcall("ZADD", KEYS[6], priority * 4294967296 + (counter % 4294967296), id)
    end
    rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", id,
          "prev", "failed")
    local dlqKey = ARGV[4] .. id
    if rcall("ZREM", KEYS[9], id) == 1 then
      rcall("DEL", dlqKey, dlqKey .. ":logs", dlqKey .. ":lock")
      rcall("XADD", KEYS[10], "*", "event", "removed", "jobId", id, "prev", "failed")
    end
    moved = moved + 1
  end
end
if moved > 0 and not blocked then
  rcall("ZADD", KEYS[5], 0, "0")
end
return {#ids, moved}

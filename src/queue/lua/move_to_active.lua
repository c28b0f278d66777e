--[[
  Fetch: promotes due delayed jobs, then leases the next ready job (wait first,
  then prioritized) to the caller's token (BullMQ's moveToActive, without a
  rate limiter), with conveyor's aging turn among prioritized jobs.

  KEYS[1] wait      KEYS[2] active   KEYS[3] prioritized   KEYS[4] events
  KEYS[5] delayed   KEYS[6] meta     KEYS[7] pc            KEYS[8] marker
  ARGV[1] job key prefix   ARGV[2] now (ms)   ARGV[3] lock token   ARGV[4] lock ms

  Returns {1, id, HGETALL of the job} when a job was leased, otherwise
  {0, score of the earliest delayed job or ""} (the caller divides by 4096).
]]
local rcall = redis.call
local prefix = ARGV[1]
local now = tonumber(ARGV[2])

local meta = rcall("HMGET", KEYS[6], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[2]) >= tonumber(meta[2])
end

-- Promote delayed jobs that are due (at most 1000 per call).
local due = rcall("ZRANGEBYSCORE", KEYS[5], 0, (now + 1) * 4096 - 1, "LIMIT", 0, 1000)
if #due > 0 then
  rcall("ZREM", KEYS[5], unpack(due))
  for _, id in ipairs(due) do
    local jobKey = prefix .. id
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    if priority == 0 then
      rcall("LPUSH", KEYS[1], id)
    else
      local counter = rcall("INCR", KEYS[7])
      rcall("ZADD", KEYS[3], priority * 4294967296 + (counter % 4294967296), id)
    end
    rcall("XADD", KEYS[4], "*", "event", "waiting", "jobId", id, "prev", "delayed")
    rcall("HSET", jobKey, "delay", 0)
  end
  if not blocked then
    rcall("ZADD", KEYS[8], 0, "0")
  end
end

if blocked then
  return {0, ""}
end

local id = rcall("RPOPLPUSH", KEYS[1], KEYS[2])
-- Legacy (v4/v5) "0:" markers in wait are dropped.
while id and string.sub(id, 1, 2) == "0:" do
  rcall("LREM", KEYS[2], 1, id)
  id = rcall("RPOPLPUSH", KEYS[1], KEYS[2])
end
if not id then
  -- conveyor's aging turn: while a prioritized job is past its aging due
  -- time (the `aging` zset, written by add_job.lua), every second fetch from
  -- `prioritized` takes the longest overdue job instead of the lowest score,
  -- so no priority starves. Entries whose job left `prioritized` elsewhere (a
  -- Node worker, a removal) are dropped as they are met.
  local agingKey = (string.gsub(KEYS[3], "prioritized$", "aging"))
  local overdue = rcall("ZRANGEBYSCORE", agingKey, "-inf", now, "LIMIT", 0, 10)
  for _, candidate in ipairs(overdue) do
    if rcall("ZSCORE", KEYS[3], candidate) then
      if rcall("INCR", agingKey .. ":turn") % 2 == 0 then
        rcall("ZREM", KEYS[3], candidate)
        id = candidate
      end
      break
    end
    rcall("ZREM", agingKey, candidate)
  end
  if not id then
    local popped = rcall("ZPOPMIN", KEYS[3])
    if #popped > 0 then id = popped[1] end
  end
  if id then
    rcall("LPUSH", KEYS[2], id)
    rcall("ZREM", agingKey, id)
  else
    rcall("DEL", KEYS[7], agingKey)
  end
end

if id then
  local jobKey = prefix .. id
  rcall("SET", jobKey .. ":lock", ARGV[3], "PX", ARGV[4])
  rcall("XADD", KEYS[4], "*", "event", "active", "jobId", id, "prev", "waiting")
  rcall("HSET", jobKey, "processedOn", ARGV[2])
  rcall("HINCRBY", jobKey, "ats", 1)
  -- Wake the next idle worker: there may be more.
  rcall("ZADD", KEYS[8], 0, "0")
  return {1, id, rcall("HGETALL", jobKey)}
end

local first = rcall("ZRANGE", KEYS[5], 0, 0, "WITHSCORES")
if first[2] then
  return {0, first[2]}
end
return {0, ""}

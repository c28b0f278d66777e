--[[
  Gives a leased job back unprocessed (graceful shutdown): releases the lock
  and puts the job at the front of wait, as a stalled recovery would but at
  once and without counting a stall.

  KEYS[1] wait   KEYS[2] active   KEYS[3] events   KEYS[4] stalled
  KEYS[5] meta   KEYS[6] marker   KEYS[7] job key
  ARGV[1] job id   ARGV[2] lock token

  Returns 0, or -1 job missing, -2 lock missing, -3 not active, -6 lock
  owned by another token.
]]
local rcall = redis.call
local jobId = ARGV[1]
local jobKey = KEYS[7]
if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local lockKey = jobKey .. ":lock"
local owner = rcall("GET", lockKey)
if not owner then
  return -2
end
if owner ~= ARGV[2] then
  return -6
end
if rcall("LREM", KEYS[2], -1, jobId) < 1 then
  return -3
end
rcall("DEL", lockKey)
rcall("SREM", KEYS[4], jobId)
rcall("RPUSH", KEYS[1], jobId)
local meta = rcall("HMGET", KEYS[5], "paused", "concurrency")
local blocked = meta[1] ~= false
if not blocked and meta[2] then
  blocked = rcall("LLEN", KEYS[2]) >= tonumber(meta[2])
end
if not blocked then
  rcall("ZADD", KEYS[6], 0, "0")
end
rcall("XADD", KEYS[3], "*", "event", "waiting", "jobId", jobId, "prev", "active")
return 0

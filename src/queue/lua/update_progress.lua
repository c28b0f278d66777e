--[[
  Stores a job's progress and announces it (BullMQ's updateProgress; like
  BullMQ, no lock check).

  KEYS[1] job key   KEYS[2] events   KEYS[3] meta
  ARGV[1] job id    ARGV[2] progress JSON

  Returns 0, or -1 when the job does not exist.
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
local maxEvents = rcall("HGET", KEYS[3], "opts.maxLenEvents") or 10000
rcall("HSET", KEYS[1], "progress", ARGV[2])
rcall("XADD", KEYS[2], "MAXLEN", "~", maxEvents, "*", "event", "progress", "jobId", ARGV[1],
      "data", ARGV[2])
return 0

--[[
  A stage of a job, in one script call: BullMQ's updateProgress (the
  `progress` field and event, as update_progress.lua) and addLog (a line of
  the job's log, trimmed to its keepLogs option, as add_log.lua). What a
  worker sends at each stage; one call instead of two halves the scripts
  Redis runs for it.

  KEYS[1] job key   KEYS[2] events   KEYS[3] meta   KEYS[4] logs key
  ARGV[1] job id    ARGV[2] progress JSON   ARGV[3] log line

  Returns the number of log lines kept, or -1 when the job does not exist
  (then nothing is written).
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
local maxEvents = rcall("HGET", KEYS[3], "opts.maxLenEvents") or 10000
rcall("HSET", KEYS[1], "progress", ARGV[2])
rcall("XADD", KEYS[2], "MAXLEN", "~", maxEvents, "*", "event", "progress", "jobId", ARGV[1],
      "data", ARGV[2])
local count = rcall("RPUSH", KEYS[4], ARGV[3])
local rawOpts = rcall("HGET", KEYS[1], "opts")
if rawOpts then
  local ok, opts = pcall(cjson.decode, rawOpts)
  local keep = ok and type(opts) == "table" and tonumber(opts["kl"])
  if keep and keep > 0 then
    rcall("LTRIM", KEYS[4], -keep, -1)
    count = math.min(count, keep)
  end
end
return count

--[[
  Appends a line to a job's log list (BullMQ's addLog), trimmed to the job's
  keepLogs option (`kl` in opts) when it has one.

  KEYS[1] job key   KEYS[2] logs key
  ARGV[1] line

  Returns the number of lines kept, or -1 when the job does not exist.
]]
local rcall = redis.call
if rcall("EXISTS", KEYS[1]) == 0 then
  return -1
end
local count = rcall("RPUSH", KEYS[2], ARGV[1])
local rawOpts = rcall("HGET", KEYS[1], "opts")
if rawOpts then
  local ok, opts = pcall(cjson.decode, rawOpts)
  local keep = ok and type(opts) == "table" and tonumber(opts["kl"])
  if keep and keep > 0 then
    rcall("LTRIM", KEYS[2], -keep, -1)
    count = math.min(count, keep)
  end
end
return count

--[[
  Renews the locks a worker holds (BullMQ's extendLocks). A renewal also takes
  the job out of the stalled candidates, so the next stalled check spares it.

  KEYS[1] stalled
  ARGV[1] job key prefix   ARGV[2] lock ms   ARGV[3..] pairs of job id, token

  Returns the 1-based positions, among the pairs, of those whose lock is gone
  or owned by another token (a worker may hold two leases of one job id).
]]
local rcall = redis.call
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local token = ARGV[i + 1]
  local lockKey = ARGV[1] .. id .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", ARGV[2])
    rcall("SREM", KEYS[1], id)
  else
    table.insert(lost, (i - 1) / 2)
  end
end
return lost

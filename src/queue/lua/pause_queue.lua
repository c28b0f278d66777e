--[[
  Pauses or resumes the queue as Queue.pause()/resume() do in BullMQ 6.
  Pause: meta `paused` = 1 and the wake-up marker is deleted, so workers stop
  fetching (jobs added meanwhile wait in `wait` without a marker). Resume:
  HDEL the flag, move up to 7000 entries of the legacy `paused` list (v4/v5)
  into wait (RENAME when wait is absent), then restore the marker: "0" when
  jobs are ready, otherwise "1" at the earliest delayed job's due time.

  KEYS[1] meta   KEYS[2] marker   KEYS[3] events   KEYS[4] paused (legacy list)
  KEYS[5] wait   KEYS[6] prioritized   KEYS[7] delayed
  ARGV[1] "paused" or "resumed"   ARGV[2] "1" to emit the event, "0" not to

  Returns the number of legacy paused entries still to migrate (call resume
  again, without the event, while it is > 0).
]]
local rcall = redis.call
local remaining = 0

if ARGV[1] == "paused" then
  rcall("HSET", KEYS[1], "paused", 1)
  rcall("DEL", KEYS[2])
else
  rcall("HDEL", KEYS[1], "paused")
  if rcall("EXISTS", KEYS[4]) == 1 then
    if rcall("EXISTS", KEYS[5]) == 0 then
      rcall("RENAME", KEYS[4], KEYS[5])
    else
      -- Bounded batches keep one call short; the rest is left for the next call.
      local batch = rcall("LRANGE", KEYS[4], 0, 6999)
      rcall("RPUSH", KEYS[5], unpack(batch))
      rcall("LTRIM", KEYS[4], #batch, -1)
      remaining = rcall("LLEN", KEYS[4])
    end
  end
  if rcall("LLEN", KEYS[5]) + rcall("ZCARD", KEYS[6]) > 0 then
    rcall("ZADD", KEYS[2], 0, "0")
  else
    local first = rcall("ZRANGE", KEYS[7], 0, 0, "WITHSCORES")
    if first[2] then
      rcall("ZADD", KEYS[2], tonumber(first[2]) / 4096, "1")
    end
  end
end

if ARGV[2] ~= "0" then
  rcall("XADD", KEYS[3], "*", "event", ARGV[1])
end
return remaining

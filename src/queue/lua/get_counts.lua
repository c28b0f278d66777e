--[[
  Job counts per state in one atomic read (what Queue.getJobCounts reports).

  KEYS[1] wait   KEYS[2] active   KEYS[3] delayed   KEYS[4] prioritized
  KEYS[5] completed   KEYS[6] failed   KEYS[7] paused (legacy list)
  KEYS[8] waiting-children

  Returns the eight counts in that order.
]]
local rcall = redis.call
return {
  rcall("LLEN", KEYS[1]), rcall("LLEN", KEYS[2]), rcall("ZCARD", KEYS[3]),
  rcall("ZCARD", KEYS[4]), rcall("ZCARD", KEYS[5]), rcall("ZCARD", KEYS[6]),
  rcall("LLEN", KEYS[7]), rcall("ZCARD", KEYS[8])
}

--[[
  What a metrics scrape reads, in one atomic call: job counts per state, the
  dead-letter queue's size and the number of live workers.

  KEYS[1] wait   KEYS[2] active   KEYS[3] delayed   KEYS[4] prioritized
  KEYS[5] completed   KEYS[6] failed   KEYS[7] paused (legacy list)
  KEYS[8] waiting-children   KEYS[9] the dead-letter queue's failed set
  KEYS[10] conveyor:workers (zset of worker ids by last beat, ms)
  ARGV[1] oldest last beat (ms) of a live worker

  Returns the ten counts in that order.
]]
local rcall = redis.call
return {
  rcall("LLEN", KEYS[1]), rcall("LLEN", KEYS[2]), rcall("ZCARD", KEYS[3]),
  rcall("ZCARD", KEYS[4]), rcall("ZCARD", KEYS[5]), rcall("ZCARD", KEYS[6]),
  rcall("LLEN", KEYS[7]), rcall("ZCARD", KEYS[8]), rcall("ZCARD", KEYS[9]),
  rcall("ZCOUNT", KEYS[10], ARGV[1], "+inf")
}

--[[
  One worker's heartbeat: its hash is rewritten and given a fresh expiry, its
  id scored by this beat in the registry set, and ids whose last beat is older
  than the expiry (dead workers) are dropped from the set.

  KEYS[1] conveyor:workers (zset: id -> last beat ms)
  KEYS[2] conveyor:workers:<id> (hash)
  ARGV[1] id   ARGV[2] now (ms)   ARGV[3] ttl (ms)   ARGV[4..] field, value, ...

  Returns the number of live workers after this beat.
]]
local rcall = redis.call
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
rcall("DEL", KEYS[2])
for i = 4, #ARGV, 2 do
  rcall("HSET", KEYS[2], ARGV[i], ARGV[i + 1])
end
rcall("PEXPIRE", KEYS[2], ttl)
rcall("ZADD", KEYS[1], now, ARGV[1])
rcall("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. (now - ttl))
rcall("PEXPIRE", KEYS[1], ttl)
return rcall("ZCARD", KEYS[1])

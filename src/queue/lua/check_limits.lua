--[[
  Per-user upload limits shared by every API process (queue/limits.h): one
  call per upload, before its body is stored. Scripts never call TIME: `now`
  is the API host's wall clock.

  KEYS[1] "<prefix>:conveyor-limits:<user>"           hash: rt, rts (uploads
          bucket: tokens, last refill ms), bt, bts (bytes bucket)
  KEYS[2] "<prefix>:conveyor-limits:<user>:inflight"  zset: upload id -> ms
          when it was let in, or when its job was last seen live
  ARGV[1] mode: "reserve", "release" (drop one upload from the in-flight
          set) or "charge" (take ARGV[4] bytes from the bytes bucket)
  ARGV[2] now (epoch ms)      ARGV[3] upload id (= job id)
  ARGV[4] bytes (the request's Content-Length; 0 when unknown)
  ARGV[5] uploads per minute  ARGV[6] bytes per hour  ARGV[7] in flight
          (each 0 = no limit)
  ARGV[8] reservation ms: how long an upload whose job hash does not exist
          (yet) counts as in flight
  ARGV[9] job key prefix ("<prefix>:<queue>:")
  ARGV[10] longest any upload counts as in flight (ms)

  In flight is swept on every reserve, never kept as a counter: an upload
  counts while its job hash exists without `finishedOn`, or, while it has no
  job hash, for ARGV[8] ms after it was let in (its body is still arriving,
  or its API process died before the job was added). So nothing leaks: a
  crash anywhere costs at most the reservation window. In flight is tracked
  even without its limit (ARGV[7] = 0): the job priority uses it.

  Returns {allowed (1/0), exceeded limit name or "", retry after s,
  uploads of the user in flight before this one}.
]]
local rcall = redis.call
local mode = ARGV[1]
local now = tonumber(ARGV[2])
local id = ARGV[3]
local bytes = tonumber(ARGV[4]) or 0
local perMinute = tonumber(ARGV[5]) or 0
local bytesPerHour = tonumber(ARGV[6]) or 0
local maxInFlight = tonumber(ARGV[7]) or 0
local reservationMs = tonumber(ARGV[8])
local jobPrefix = ARGV[9]
local maxAgeMs = tonumber(ARGV[10])
local kMinute, kHour = 60000, 3600000

if mode == "release" then
  rcall("ZREM", KEYS[2], id)
  return {1, "", 0, 0}
end

-- A token bucket's tokens at `now`: full when new, refilled pro rata.
local function refill(tokens, at, capacity, windowMs)
  tokens, at = tonumber(tokens), tonumber(at)
  if not tokens or not at then return capacity end
  return math.min(capacity, tokens + math.max(0, now - at) * capacity / windowMs)
end

local h = rcall("HMGET", KEYS[1], "rt", "rts", "bt", "bts")

if mode == "charge" then
  if bytesPerHour > 0 then
    -- May go below zero: the user's next uploads wait until it refills.
    local bt = refill(h[3], h[4], bytesPerHour, kHour)
    rcall("HSET", KEYS[1], "bt", bt - bytes, "bts", now)
    rcall("PEXPIRE", KEYS[1], kHour)
  end
  return {1, "", 0, 0}
end

-- In flight: the set is swept, not trusted. Each call looks at the 4
-- members seen longest ago (dropping the final ones and moving the live ones
-- to the back), so the count follows the jobs at a small fixed cost: a call
-- adds at most one member and may drop four, and a job that became final is
-- dropped within a quarter of the set's size in calls. A user at the limit
-- gets a full sweep before being refused.
local function alive(m, since)
  local job = rcall("HMGET", jobPrefix .. m, "timestamp", "finishedOn")
  if job[1] then
    if job[2] then return false end
    rcall("ZADD", KEYS[2], now, m)
    return true
  end
  return now - since < reservationMs
end
local function sweep(n)
  local members = rcall("ZRANGE", KEYS[2], 0, n - 1, "WITHSCORES")
  for i = 1, #members, 2 do
    if not alive(members[i], tonumber(members[i + 1])) then rcall("ZREM", KEYS[2], members[i]) end
  end
end
rcall("ZREMRANGEBYSCORE", KEYS[2], "-inf", now - maxAgeMs)
sweep(4)
local inFlight = rcall("ZCARD", KEYS[2])
if maxInFlight > 0 and inFlight >= maxInFlight then
  sweep(inFlight)
  inFlight = rcall("ZCARD", KEYS[2])
end

local exceeded, retry = "", 0
local function refuse(name, seconds)
  if exceeded == "" then exceeded = name end
  retry = math.max(retry, seconds)
end

if maxInFlight > 0 and inFlight >= maxInFlight then
  -- Unknown when one of them finishes: a short wait.
  refuse("uploads_in_flight", 5)
end
local rt, bt
if perMinute > 0 then
  rt = refill(h[1], h[2], perMinute, kMinute)
  if rt < 1 then refuse("uploads_per_minute", math.ceil((1 - rt) * kMinute / perMinute / 1000)) end
end
if bytesPerHour > 0 then
  bt = refill(h[3], h[4], bytesPerHour, kHour)
  -- An upload larger than the whole budget needs a full bucket, not more.
  local need = math.min(bytes, bytesPerHour)
  if need > 0 and bt < need then
    refuse("upload_bytes_per_hour", math.ceil((need - bt) * kHour / bytesPerHour / 1000))
  elseif need == 0 and bt < 0 then
    refuse("upload_bytes_per_hour", math.ceil(-bt * kHour / bytesPerHour / 1000))
  end
end
if exceeded ~= "" then
  return {0, exceeded, math.max(1, retry), inFlight}
end

if perMinute > 0 then rcall("HSET", KEYS[1], "rt", rt - 1, "rts", now) end
if bytesPerHour > 0 then rcall("HSET", KEYS[1], "bt", bt - bytes, "bts", now) end
if perMinute > 0 or bytesPerHour > 0 then rcall("PEXPIRE", KEYS[1], kHour) end
rcall("ZADD", KEYS[2], now, id)
rcall("PEXPIRE", KEYS[2], maxAgeMs)
return {1, "", 0, inFlight}

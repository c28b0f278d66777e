# Process helpers of the multi-process test scripts (tests/chaos/chaos.sh,
# tests/fleet/fleet.sh, tests/sentinel/sentinel_failover.sh) and of
# bench/capacity.sh; sourced by them (bash). Every process they start is
# recorded by PID and stopped by PID: nothing here looks a process up by name.

# A free TCP port on the loopback interface.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# True while process `pid` runs.
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Waits for our child `pid` to end; SIGKILL after `timeout` seconds (20).
reap() {
  local pid=$1 timeout=${2:-20} i
  for ((i = 0; i < timeout * 20; i++)); do
    alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# await SECONDS CMD [ARG...]: runs CMD every 0.1 s until it succeeds (true)
# or SECONDS have passed (false). CMD is evaluated each time, so pass a
# function, not a $(...) that would be expanded once.
await() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

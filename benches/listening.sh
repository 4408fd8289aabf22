# Sourced by compare.sh and instructions.sh.
#
# listening_addr LOG PID TRIES: waits for a server's "listening on ADDR" line in LOG, checking
# every 0.1 s up to TRIES times, and prints ADDR as host:port. Fails when the server (PID)
# exits first or never says it. (The caller removes an old LOG before starting the server:
# until the server's shell truncates it, an old address would be read.)
listening_addr() {
  local log=$1 pid=$2 tries=$3 addr
  for _ in $(seq "$tries"); do
    addr=$(grep -so 'listening on [^ ]*' "$log" | head -n1 | sed 's#^listening on ##; s#^https\?://##; s#/$##') || true
    if [ -n "$addr" ]; then
      echo "$addr"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Processes of the local cluster: start, check and stop a component by name, and wait for a
# condition.

# start_proc NAME CMD...: runs CMD in its own session, logs to $KUBEMR_LOG_DIR/NAME.log,
# pid in $CL/pids/NAME.pid. Idempotent: a live NAME is left alone.
start_proc() {
  local name=$1; shift
  if proc_alive "$name"; then log "$name: already running (pid $(cat "$CL/pids/$name.pid"))"; return 0; fi
  mkdir -p "$CL/pids" "$KUBEMR_LOG_DIR"
  echo "=== $(date -Is) start: $*" >> "$KUBEMR_LOG_DIR/$name.log"
  setsid "$@" >> "$KUBEMR_LOG_DIR/$name.log" 2>&1 < /dev/null 3>&- &
  echo $! > "$CL/pids/$name.pid"
  log "$name: started (pid $!)"
}
proc_alive() {
  local f="$CL/pids/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}
stop_proc() {  # stop_proc NAME [timeout]
  local name=$1 t=${2:-20} f="$CL/pids/$1.pid" pid i
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t * 5; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "$name: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; }
    log "$name: stopped"
  fi
  rm -f "$f"
}
wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2 i; shift 2
  for ((i = 0; i < t * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "timed out after ${t}s waiting for $what (logs: $KUBEMR_LOG_DIR)"
}

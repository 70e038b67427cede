# cloud-atlas machine-side deadline. POSIX sh only: no bashisms, no single quotes.
#
#   sh -c "$WRAPPER" atlas-deadline SECS GRACE END -- CMD [ARG...]
#
# Runs CMD. SECS seconds after it started, sends it TERM, and KILL GRACE seconds later.
# Once CMD has ended (by itself or at the deadline) the machine is ended the provider's
# way, END: exit (exiting ends it: Fly, restart "no" + auto_destroy), runpod (runpodctl
# with the pod-scoped key RunPod puts on every pod), vast (the per-instance
# CONTAINER_API_KEY). Ending is retried until it works: exiting instead would let a
# provider restart the container and run CMD again with a fresh deadline.
# Exits with CMD's status, or 124 when the deadline ended it (as timeout(1) does).
# TERM, INT or HUP from outside (someone stopping the machine) is passed on to CMD and
# the machine is left to whoever stops it.
#
# Lines are joined into one line before it is sent (comments dropped): each line is a
# complete command, or ends with a word that continues it (do, then, else, {, (, in,
# ;;, &, |, &&, ||).
secs=$1 grace=$2 end=$3
shift 3
[ "$1" = -- ] && shift
say() { printf "atlas-deadline: %s\n" "$*" >&2; }
"$@" &
cmd=$!
# The timer starts before this shell traps TERM: a subshell forked while a trap is set
# can lose a TERM that arrives before it sets its own (dash).
(
fired=0
trap "kill \$t 2>/dev/null; exit \$fired" TERM
sleep "$secs" >/dev/null 2>&1 &
t=$!
wait "$t"
fired=3
say "max runtime ${secs}s reached: stopping the command"
kill -TERM "$cmd" 2>/dev/null
sleep "$grace" >/dev/null 2>&1 &
t=$!
wait "$t"
kill -KILL "$cmd" 2>/dev/null
exit 3
) &
timer=$!
stopped=
# shellcheck disable=SC2064 # $cmd is meant to expand now
trap "stopped=1; kill -TERM $cmd 2>/dev/null" TERM INT HUP
while :; do
wait "$cmd"
code=$?
kill -0 "$cmd" 2>/dev/null || break
done
kill "$timer" 2>/dev/null
wait "$timer"
[ $? -eq 3 ] && code=124
[ -n "$stopped" ] && exit "$code"
end_machine() {
case $end in
exit) return 0 ;;
runpod) [ -n "$RUNPOD_POD_ID" ] || { say "RUNPOD_POD_ID is not set"; return 1; }
runpodctl remove pod "$RUNPOD_POD_ID" || runpodctl stop pod "$RUNPOD_POD_ID" ;;
vast) { [ -n "$CONTAINER_ID" ] && [ -n "$CONTAINER_API_KEY" ]; } || { say "CONTAINER_ID or CONTAINER_API_KEY is not set"; return 1; }
ATLAS_END_URL="https://console.vast.ai/api/v0/instances/$CONTAINER_ID/"
export ATLAS_END_URL
if command -v curl >/dev/null 2>&1; then
printf "header = \"Authorization: Bearer %s\"\n" "$CONTAINER_API_KEY" | curl -fsS -X DELETE -K - "$ATLAS_END_URL" >/dev/null && return 0
fi
if command -v python3 >/dev/null 2>&1; then
python3 -c "import os, urllib.request as u; u.urlopen(u.Request(os.environ[\"ATLAS_END_URL\"], method=\"DELETE\", headers={\"Authorization\": \"Bearer \" + os.environ[\"CONTAINER_API_KEY\"]}), timeout=30)" && return 0
fi
vastai destroy instance "$CONTAINER_ID" --api-key "$CONTAINER_API_KEY" </dev/null ;;
*) say "unknown way to end the machine: $end"; return 1 ;;
esac
}
n=0
pause=1
until end_machine; do
n=$((n + 1))
say "could not end the machine (attempt $n); trying again in ${pause}s"
sleep "$pause" >/dev/null 2>&1
[ "$pause" -lt 60 ] && pause=$((pause * 2))
done
exit "$code"

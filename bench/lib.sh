# bench/lib.sh - what the benchmark scripts share: logging, starting and
# stopping a server, waiting for a quiet machine, the machine's description,
# and writing a section of docs/performance.md. Sourced, not run:
#
#   . "$ROOT/bench/lib.sh"   # after setting ROOT, PY, QUIET_PCT, QUIET_WAIT
#
# A script that sources it sets SERVER_PID when it starts a server and calls
# stop_server (SAMPLER_PID and stop_sampler the same for a background sampler);
# CLK_TCK and EVENTS_SCHEMA are set here.

CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=""
SAMPLER_PID=""

# The schema of the pushed-events scenarios (judgments-like rows, bench/load.lua), indented
# for a dataset entry of a generated configuration.
EVENTS_SCHEMA='    schema:
      type: object
      required: [case_number, amount, filed_date]
      additionalProperties: false
      properties:
        case_number: {type: string, pattern: "^CASE-[0-9]{7}$"}
        amount:      {type: number, minimum: 0}
        filed_date:  {type: string, format: date}
        status:      {type: string, enum: [open, closed, pending]}
        notes:       {type: string, maxLength: 2000}'

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

wait_http() { # URL: wait until it answers (at most 30 s) while SERVER_PID lives
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop_server() { # SIGTERM, then SIGKILL after 30 s (a large batch may be committing)
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

stop_sampler() { # the background sampler SAMPLER_PID, if one runs
    if [ -n "$SAMPLER_PID" ]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}

cpu_ticks() { # PID...: utime+stime of these processes (all threads), in clock ticks
    local t=0 p f
    for p in "$@"; do
        read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
        # after "(comm)": utime is f[13], stime f[14] (no spaces in these processes' comms)
        t=$((t + f[13] + f[14]))
    done
    echo "$t"
}

disk_facts() { # DIR: sets DATA_DEV, DATA_FS, DISK_NAME, ROTA (rotational 0/1/?), DISK_MODEL
    DATA_DEV=$(df --output=source "$1" | tail -1)
    DATA_FS=$(df --output=fstype "$1" | tail -1)
    DISK_NAME=$(lsblk -no PKNAME "$DATA_DEV" 2>/dev/null | head -1)
    [ -n "$DISK_NAME" ] || DISK_NAME=$(basename "$DATA_DEV")
    ROTA=$(cat "/sys/block/$DISK_NAME/queue/rotational" 2>/dev/null || echo "?")
    DISK_MODEL=$(cat "/sys/block/$DISK_NAME/device/model" 2>/dev/null | xargs || true)
}

machine_ticks() { # busy CPU ticks of the whole machine so far (all cores)
    local _c u n s i w q sq st _r
    read -r _c u n s i w q sq st _r </proc/stat
    echo $((u + n + s + q + sq + st))
}

wait_quiet() { # wait (at most QUIET_WAIT s) until others use at most QUIET_PCT% of a core
    local t0 t1 busy waited=0
    while :; do
        t0=$(machine_ticks); sleep 1; t1=$(machine_ticks)
        busy=$(((t1 - t0) * 100 / CLK_TCK))
        [ "$busy" -le "$QUIET_PCT" ] && return 0
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            log "  the machine is still busy (${busy}% of a core used by others); measuring anyway"
            return 0
        fi
        [ "$waited" = 0 ] && log "  waiting for the machine to go quiet (${busy}% of a core busy; limit ${QUIET_WAIT}s)"
        waited=$((waited + 1))
    done
}

machine_line() { # one line: CPU, cores, memory, kernel, OS, disk of DIR ($1)
    local dev fs
    dev=$(df --output=source "$1" | tail -1)
    fs=$(df --output=fstype "$1" | tail -1)
    echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores," \
        "$(free -h | awk '/^Mem:/ {print $2}') RAM, $(uname -sr)," \
        "$(. /etc/os-release && echo "$PRETTY_NAME"), $(systemd-detect-virt 2>/dev/null || echo unknown)," \
        "data on $dev ($fs)"
}

# write_doc_section DOC NAME TITLE FILE: put FILE's text between
# <!-- bench:NAME:begin --> and <!-- bench:NAME:end --> in DOC (added at its end
# under "## TITLE" when missing). Hand-written notes after a line
# <!-- bench:NAME:notes --> inside the section are kept.
write_doc_section() {
    "$PY" - "$@" <<'EOF'
import re, sys
doc, name, title, body_file = sys.argv[1:5]
begin, end, notes = (f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->",
                     f"<!-- bench:{name}:notes -->")
body = open(body_file).read().rstrip("\n")
try:
    text = open(doc).read()
except FileNotFoundError:
    text = ""
if begin in text and end in text:
    old = text[text.index(begin) + len(begin):text.index(end)]
    kept = old[old.index(notes):].rstrip("\n") if notes in old else ""
    section = begin + "\n" + body + "\n" + (kept + "\n" if kept else "") + end
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + f"\n\n## {title}\n\n{begin}\n{body}\n{end}\n"
open(doc, "w").write(text)
EOF
}

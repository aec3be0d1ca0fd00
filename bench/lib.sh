# bench/lib.sh - what the benchmark scripts share: logging, starting and
# stopping a server, waiting for a quiet machine, the machine's description,
# and writing a section of docs/performance.md. Sourced, not run:
#
#   . "$ROOT/bench/lib.sh"   # after setting ROOT, PY, QUIET_PCT, QUIET_WAIT
#
# A script that sources it sets SERVER_PID when it starts a server and calls
# stop_server; CLK_TCK is set here.

CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

wait_http() { # URL: wait until it answers (at most 20 s) while SERVER_PID lives
    for _ in $(seq 1 200); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop_server() { # SIGTERM, then SIGKILL after 15 s
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
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

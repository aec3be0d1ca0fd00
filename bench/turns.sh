#!/usr/bin/env bash
# bench/turns.sh - compare two builds of sluice on the push benchmark, in turns.
#
#   bash bench/turns.sh OLD_TREE NEW_TREE [TURNS]
#
# OLD_TREE and NEW_TREE are work trees (a `git worktree add` of the old commit, and this
# one), each with its build/sluice built. The machine is shared and drifts, so the two are
# never measured in blocks: each turn runs bench/run.sh once for the old tree, then once for
# the new one (N=1, PEER=0, KEYED=0, DOC= unless the environment says otherwise), TURNS
# times (6). Every run's output is kept in $OUT (a temp dir, printed); at the end one line a
# run, then the median of each scenario for each side and their ratio.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash bench/turns.sh OLD_TREE NEW_TREE [TURNS]" >&2; exit 2; }
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
TURNS=${3:-6}
for t in "$OLD" "$NEW"; do
    [ -x "$t/build/sluice" ] || { echo "no $t/build/sluice: build it first" >&2; exit 2; }
done
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/sluice-turns.XXXXXX")}
mkdir -p "$OUT"
echo "runs in $OUT"
export N=${N:-1} DURATION=${DURATION:-8s} WARMUP=${WARMUP:-2s} KEYED=${KEYED:-0} PEER=${PEER:-0}
export DOC=
for i in $(seq 1 "$TURNS"); do
    for side in old new; do
        tree=$OLD
        [ $side = new ] && tree=$NEW
        (cd "$tree" && bash bench/run.sh) > "$OUT/$side-$i.txt" 2>&1
        echo "turn $i $side done $(date -u +%T)"
    done
done
/usr/bin/python3 - "$OUT" "$TURNS" <<'PY'
import re, statistics, sys
out, turns = sys.argv[1], int(sys.argv[2])
def figure(path, scenario, col):
    for line in open(path):
        if line.startswith(f"| sluice | {scenario} |"):
            return int(line.split("|")[col].strip().replace(",", ""))
    return None
for scenario, col, unit in (("batch100", 4, "rows/s"), ("single", 3, "req/s")):
    med = {}
    for side in ("old", "new"):
        v = [figure(f"{out}/{side}-{i}.txt", scenario, col) for i in range(1, turns + 1)]
        v = [x for x in v if x is not None]
        print(f"{scenario} {side}: " + " · ".join(f"{x:,}" for x in v))
        med[side] = statistics.median(v) if v else 0
    ratio = med["new"] / med["old"] if med["old"] else float("nan")
    print(f"{scenario} ({unit}) median old {med['old']:,.0f}, new {med['new']:,.0f}, new/old {ratio:.2f}")
PY

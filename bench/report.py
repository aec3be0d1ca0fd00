"""report.py MACHINE_JSON RESULTS_JSONL [DOC] - bench/run.sh's report.

Prints the results as Markdown and, when DOC is given, puts them into DOC
between the lines <!-- bench:results:begin --> and <!-- bench:results:end -->
(the rest of DOC, e.g. a hand-written analysis, is kept; DOC is created when
missing). Each metric of a scenario is the median of its N runs (warm-ups are
left out).
"""
import json
import statistics
import sys

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
SCEN = {
    "batch100": "NDJSON batches of 100 rows, key-less dataset",
    "single": "single-row POSTs (application/json), key-less dataset",
    "batch100k": "NDJSON batches of 100 rows, `judgments` (unique key; fresh data dir per run)",
}
# scenario: (throughput field, unit, minimum, p99 ceiling in ms)
TARGETS = {
    "batch100": ("rows_per_s", "rows/s", 150000, 50),
    "single": ("req_per_s", "req/s", 15000, 20),
    "batch100k": ("rows_per_s", "rows/s", 150000, 50),
}
RSS_MAX_MB = 100


def other(r):
    """CPU seconds the rest of the machine used during a run (not the server, not wrk)."""
    return max(0.0, r.get("machine_cpu_s", 0) - r["server_cpu_s"] - r["wrk_cpu_s"])


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    machine = json.load(open(sys.argv[1]))
    runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    runs = [r for r in runs if r["run"] != "warmup"]
    doc = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None

    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["scenario"]), []).append(r)
    secs = {k: [r["wrk"]["duration_s"] for r in v] for k, v in groups.items()}

    def m(key, f):
        return med([f(r) for r in groups.get(key, [])])

    def summary(key):
        return {
            "req_per_s": m(key, lambda r: r["wrk"]["req_per_s"]),
            "rows_per_s": m(key, lambda r: r["wrk"]["rows_per_s"]),
            "p50": m(key, lambda r: r["wrk"]["lat_p50_us"] / 1e3),
            "p99": m(key, lambda r: r["wrk"]["lat_p99_us"] / 1e3),
            "max": m(key, lambda r: r["wrk"]["lat_max_us"] / 1e3),
            "rss": m(key, lambda r: r["rss_kb"] / 1024),
            "rss_max": max(r["rss_kb"] for r in groups[key]) / 1024,
            "srv_cpu": m(key, lambda r: r["server_cpu_s"] / r["wrk"]["duration_s"]),
            "wrk_cpu": m(key, lambda r: r["wrk_cpu_s"] / r["wrk"]["duration_s"]),
            "other_cpu": m(key, lambda r: other(r) / r["wrk"]["duration_s"]),
            "bad": sum(r["wrk"]["bad_status"] + r["wrk"]["socket_errors"] + r["wrk"]["timeouts"]
                       for r in groups[key]),
            "stored": sum(r["stored_after"] - r["stored_before"] for r in groups[key]),
            "accepted": sum(r["wrk"]["accepted"] for r in groups[key]),
        }

    S = {k: summary(k) for k in groups}
    fs = machine["fdatasync"]
    out = []
    w = out.append
    w(f"Measured {machine['date']} by `{machine['command']}`; binary: {machine['sluice_version']}"
      f" (work tree at {machine['git']}).")
    w("")
    w("| machine | |")
    w("|---|---|")
    w(f"| CPU | {machine['nproc']} × {machine['cpu']} ({machine['virt']}), {machine['mem']} RAM |")
    w(f"| OS, kernel | {machine['os']}, {machine['kernel']} |")
    w(f"| disk of the data dir | {machine['disk']} (as the kernel reports it) |")
    w(f"| one write+fdatasync (4 KiB, n={fs['n']}) | median {fs['median_us']:.0f} µs, p90 {fs['p90_us']:.0f} µs,"
      f" p99 {fs['p99_us']:.0f} µs, mean {fs['mean_us']:.0f} µs: at most ~{fs['syncs_per_s_at_median']:,}"
      f" durable commits/s for one writer |")
    w(f"| load generator | {machine['wrk']}, {machine['threads']} threads, {machine['conns']} keep-alive"
      f" connections, {machine['n']} runs × {machine['duration']} a scenario after a {machine['warmup']} warm-up,"
      f" **on the same {machine['nproc']} cores as the server** |")
    w(f"| peer | bench/peer_fastapi.py: {machine['fastapi']}, {machine['python']}, 2 uvicorn workers"
      f" (asyncio + h11), SQLite WAL synchronous=FULL, one commit per request, no access log |")
    w("")
    w("### Against the targets (medians)")
    w("")
    w("| scenario | target | sluice | met? | peer | ratio |")
    w("|---|---|---|---|---|---|")
    for scen, (field, unit, tmin, p99max) in TARGETS.items():
        if ("sluice", scen) not in S:
            continue
        s, p = S[("sluice", scen)], S.get(("peer", scen))
        ok_t, ok_l = s[field] >= tmin, s["p99"] < p99max
        ok_r = s["rss_max"] < RSS_MAX_MB
        met = "yes" if ok_t else "no (%.0f%% of it)" % (100 * s[field] / tmin)
        peer_t = f"{p[field]:,.0f} {unit}" if p else "–"
        ratio = f"sluice {s[field] / p[field]:.1f}× the peer" if p and p[field] else "–"
        w(f"| {SCEN[scen]} | ≥ {tmin:,} {unit} | {s[field]:,.0f} {unit} | {met} | {peer_t} | {ratio} |")
        peer_l = f"{p['p99']:.1f} ms" if p else "–"
        ratio_l = f"sluice's p99 is {s['p99'] / p['p99']:.2f}× the peer's" if p and p["p99"] else ""
        w(f"| | p99 < {p99max} ms | {s['p99']:.1f} ms | {'yes' if ok_l else 'no'} | {peer_l} | {ratio_l} |")
        peer_r = f"{p['rss_max']:.1f} MB (master + 2 workers)" if p else "–"
        w(f"| | RSS < {RSS_MAX_MB} MB | {s['rss_max']:.1f} MB (highest run) | {'yes' if ok_r else 'no'} | {peer_r} | |")
    w("")
    w("### All scenarios (median of the runs)")
    w("")
    w("| target | scenario | req/s | rows/s | p50 ms | p99 ms | max ms | peak RSS MB | server CPU (cores) | wrk CPU (cores) | others' CPU (cores) | stored rows / acknowledged | failed requests |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (t, scen), s in sorted(S.items(), key=lambda kv: (kv[0][0] != "sluice", list(SCEN).index(kv[0][1]))):
        w(f"| {t} | {scen} | {s['req_per_s']:,.0f} | {s['rows_per_s']:,.0f} | {s['p50']:.1f} | {s['p99']:.1f} |"
          f" {s['max']:.1f} | {s['rss']:.1f} | {s['srv_cpu']:.2f} | {s['wrk_cpu']:.2f} | {s['other_cpu']:.2f} |"
          f" {s['stored']:,} / {s['accepted']:,} | {s['bad']} |")
    w("")
    w("Scenarios: " + "; ".join(f"`{k}`: {v}" for k, v in SCEN.items() if any(k == s for _, s in S)) + ".")
    w("Rows are ~200 bytes of valid `judgments` JSON, each with its own case number (bench/load.lua)."
      " *stored rows* is the count(*) difference in the database over the runs; it may exceed the"
      " acknowledged rows by the requests in flight when wrk stopped (answered after wrk's clock ran out)."
      " *server CPU* is the server's user+system time over the run's wall time (the peer: all its processes);"
      " the machine has " + machine["nproc"] + " cores for both. *others' CPU* is what the rest of the"
      " machine (other users' processes) used meanwhile, from /proc/stat less the two above (±~0.1 core:"
      " the counters tick at different times); a run with much of it is skewed.")
    w("")
    w("<details><summary>Every run</summary>")
    w("")
    w("| target | scenario | run | req/s | rows/s | p50 ms | p99 ms | peak RSS MB | server CPU s | wrk CPU s | others' CPU s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        x = r["wrk"]
        w(f"| {r['target']} | {r['scenario']} | {r['run']} | {x['req_per_s']:,.0f} | {x['rows_per_s']:,.0f} |"
          f" {x['lat_p50_us'] / 1e3:.1f} | {x['lat_p99_us'] / 1e3:.1f} | {r['rss_kb'] / 1024:.1f} |"
          f" {r['server_cpu_s']:.1f} | {r['wrk_cpu_s']:.1f} | {other(r):.1f} |")
    w("")
    w("</details>")
    text = "\n".join(out) + "\n"
    print(text)

    if doc:
        block = f"{BEGIN}\n{text}{END}"
        try:
            cur = open(doc).read()
        except FileNotFoundError:
            cur = ""
        if BEGIN in cur and END in cur:
            new = cur[:cur.index(BEGIN)] + block + cur[cur.index(END) + len(END):]
        else:
            new = ("# Performance\n\nThe numbers below are written by `bash bench/run.sh` (see that file);"
                   " re-run it to refresh them. Everything outside the results block is kept.\n\n"
                   "## Results\n\n" + block + "\n\n## Analysis\n\n(not written yet)\n")
            if cur:
                new = cur.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
        open(doc, "w").write(new)
        print(f"report.py: wrote {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()

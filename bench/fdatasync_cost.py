"""fdatasync_cost.py DIR [N] [SIZE] [append] - what one durable commit costs on DIR's disk.

Writes SIZE bytes (default 4096) into a scratch file in DIR and fdatasync()s
them, N times (default 2000), like a WAL write followed by the commit's sync.
The writes go round 64 preallocated slots of SIZE bytes (a WAL that is being
reused after a checkpoint), or with `append` each one extends the file (a WAL
that grows: the file system allocates blocks too). Prints one
JSON line: median, p90, p99 and mean in microseconds, and the commits a second
one thread could make if it did nothing but sync (1e6 / median). A group
commit pays one such sync for all the requests of the group, so this bounds
how many groups a second the writer can commit.
"""
import json
import os
import sys
import time

d = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
append = len(sys.argv) > 4 and sys.argv[4] == "append"
path = os.path.join(d, "fdatasync-probe.tmp")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
block = os.urandom(size)
try:
    if not append:
        for i in range(64):  # allocate the blocks first: later writes are overwrites
            os.pwrite(fd, block, i * size)
    os.fsync(fd)
    ts = []
    for i in range(n):
        t = time.perf_counter()
        os.pwrite(fd, block, (i if append else i % 64) * size)
        os.fdatasync(fd)
        ts.append(time.perf_counter() - t)
finally:
    os.close(fd)
    os.unlink(path)
ts.sort()
med = ts[n // 2] * 1e6
print(json.dumps({"n": n, "bytes": size, "append": append, "median_us": round(med, 1), "p90_us": round(ts[int(n * 0.9)] * 1e6, 1),
                  "p99_us": round(ts[int(n * 0.99)] * 1e6, 1),
                  "mean_us": round(sum(ts) / n * 1e6, 1),
                  "syncs_per_s_at_median": round(1e6 / med)}))

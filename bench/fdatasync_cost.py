"""fdatasync_cost.py DIR [N] - what one durable commit costs on DIR's disk.

Overwrites one 4 KiB block of a scratch file in DIR and fdatasync()s it, N times
(default 2000), like a WAL append followed by the commit's sync. Prints one
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
path = os.path.join(d, "fdatasync-probe.tmp")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
block = b"x" * 4096
try:
    for i in range(64):  # allocate the blocks first: later writes are overwrites
        os.pwrite(fd, block, i * 4096)
    os.fsync(fd)
    ts = []
    for i in range(n):
        t = time.perf_counter()
        os.pwrite(fd, block, (i % 64) * 4096)
        os.fdatasync(fd)
        ts.append(time.perf_counter() - t)
finally:
    os.close(fd)
    os.unlink(path)
ts.sort()
med = ts[n // 2] * 1e6
print(json.dumps({"n": n, "median_us": round(med, 1), "p90_us": round(ts[int(n * 0.9)] * 1e6, 1),
                  "p99_us": round(ts[int(n * 0.99)] * 1e6, 1),
                  "mean_us": round(sum(ts) / n * 1e6, 1),
                  "syncs_per_s_at_median": round(1e6 / med)}))

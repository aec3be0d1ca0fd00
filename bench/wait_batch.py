#!/usr/bin/python3
"""bench/wait_batch.py - wait until a batch is completed or failed.

    wait_batch.py URL BATCH_ID [POLL_S] [TIMEOUT_S]

Polls GET URL/api/v1/batches/BATCH_ID every POLL_S seconds (0.05) over one
keep-alive connection and prints the batch's final JSON. Exit status: 0 when
completed, 1 when failed or rejected, 2 on a timeout (TIMEOUT_S, 600) or an
unreadable answer.

Why not a curl per poll: a benchmark that starts curl and a JSON parser every
50 ms spends a good part of a core on polling, on the same cores as the server
it measures. One process and one connection cost well under a millisecond of
CPU a poll.
"""
import http.client
import json
import sys
import time
import urllib.parse


def main():
    url, bid = sys.argv[1], sys.argv[2]
    poll = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 600
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    path = "/api/v1/batches/" + urllib.parse.quote(bid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()  # reconnects at the next request
            time.sleep(poll)
            continue
        try:
            b = json.loads(body)
        except ValueError:
            print(body.decode(errors="replace"))
            return 2
        if b.get("status") == "completed":
            print(json.dumps(b))
            return 0
        if b.get("status") in ("failed", "rejected"):
            print(json.dumps(b))
            return 1
        time.sleep(poll)
    print("timed out waiting for batch %s" % bid, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

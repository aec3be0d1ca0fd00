"""Alert notifications are delivered at least once (issue 13, items 1.4 and 1.5): while the
receivers are down (500, or nothing listening) nothing is marked notified and the outbox
metrics show what waits; when they come back each notification arrives once, in order (a
resolution never before its firing); a kill -9 while deliveries are pending loses none; on
PostgreSQL the node that takes over the sentinel's role delivers what the dead one left.
A restart keeps a `source_stalled` alert firing while the source is still silent."""
import http.server
import json
import re
import threading
import time

import pytest

from conftest import STORE, free_port, wait_for

QUIET = """  - name: quiet
    expected_every: 2s
    schema: {type: object}
"""


class Receiver:
    """A webhook receiver that can fail: status 500 answers every POST with 500 (nothing
    recorded), down() stops listening, up() listens again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.bodies = []
        self.status = 200
        self.srv = None

    def up(self, status=200):
        self.status = status
        if self.srv is None:
            rec = self

            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    n = int(self.headers.get("Content-Length", 0))
                    body = json.loads(self.rfile.read(n))
                    if rec.status == 200:
                        rec.bodies.append(body)
                    self.send_response(rec.status)
                    self.end_headers()

                def log_message(self, *a):
                    pass

            self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
            threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def down(self):
        if self.srv is not None:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def events(self, alert_id=None):
        """(status, alert id) of what arrived, in order (webhook JSON and Slack text)."""
        out = []
        for b in self.bodies:
            if "text" in b:
                st = "resolved" if b["text"].startswith("[RESOLVED]") else "firing"
                out.append((st, None))
            elif alert_id is None or b["alert"]["id"] == alert_id:
                out.append((b["status"], b["alert"]["id"]))
        return out


@pytest.fixture
def receivers():
    hook, chat = Receiver(), Receiver()
    yield hook, chat
    hook.down()
    chat.down()


def config(hook, chat, retry=""):
    return f"""
sentinel: {{interval_s: 1}}
alerts:
  {retry}
  receivers:
    - {{name: hook, type: webhook, url: "{hook.url}"}}
    - {{name: chat, type: webhook, format: slack, url: "{chat.url}"}}
"""


def metric(server, name, receiver=None):
    text = server.get("/metrics").text
    lab = '{receiver="%s"}' % receiver if receiver else ""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(lab)), text, re.M)
    return float(m.group(1)) if m else None


def stalled(server):
    items = server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
    return [a for a in items if a["rule"] == "source_stalled"]


def fire_while_down(make_server, hook, chat):
    """A server whose `quiet` source stalls while hook answers 500 and chat is down; returns
    it and the firing alert, once both receivers have failed at least once."""
    hook.up(status=500)
    server = make_server(extra_yaml=config(hook, chat), datasets_yaml=QUIET)
    assert server.post_events("quiet", "{}\n").status_code == 200
    alert = wait_for(lambda: stalled(server), what="the source_stalled alert")[0]
    wait_for(lambda: (metric(server, "sluice_alert_delivery_failures_total", "hook") or 0) >= 1
             and (metric(server, "sluice_alert_delivery_failures_total", "chat") or 0) >= 1,
             what="a failed attempt for each receiver")
    return server, alert


def test_receivers_down_then_back_delivered_once_each(make_server, receivers):
    hook, chat = receivers
    server, alert = fire_while_down(make_server, hook, chat)
    time.sleep(2)  # a few more evaluations and retries
    a = server.get(f"/api/v1/alerts/{alert['id']}").json()
    assert (a["notifications"], a["last_notified_at"]) == (0, None), a
    assert metric(server, "sluice_alert_deliveries_pending") == 2
    assert metric(server, "sluice_alert_delivery_oldest_pending_seconds") >= 2
    assert hook.bodies == [] and chat.bodies == []
    hook.up(status=200)
    chat.up()
    wait_for(lambda: hook.bodies and chat.bodies, what="both receivers to get the alert")
    wait_for(lambda: metric(server, "sluice_alert_deliveries_pending") == 0,
             what="the outbox to empty")
    time.sleep(2)
    assert hook.events() == [("firing", alert["id"])]
    assert chat.events() == [("firing", None)]
    assert "quiet" in chat.bodies[0]["text"]
    a = server.get(f"/api/v1/alerts/{alert['id']}").json()
    assert a["notifications"] == 2 and a["last_notified_at"], a
    assert metric(server, "sluice_alert_delivery_oldest_pending_seconds") == 0


def test_resolved_while_undelivered_arrives_after_its_firing(make_server, receivers):
    hook, chat = receivers
    server, alert = fire_while_down(make_server, hook, chat)
    # the source is back, and keeps sending (so that it does not stall again meanwhile)
    feeding = threading.Event()

    def feed():
        while not feeding.wait(0.5):
            server.post_events("quiet", "{}\n")
    assert server.post_events("quiet", "{}\n").status_code == 200
    threading.Thread(target=feed, daemon=True).start()
    wait_for(lambda: server.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "resolved",
             what="the alert to resolve")
    wait_for(lambda: metric(server, "sluice_alert_deliveries_pending") == 4,
             what="firing and resolution waiting for both receivers")
    hook.up(status=200)
    chat.up()
    wait_for(lambda: len(hook.bodies) >= 2 and len(chat.bodies) >= 2,
             what="both notifications at both receivers")
    time.sleep(2)
    assert hook.events() == [("firing", alert["id"]), ("resolved", alert["id"])]
    assert chat.events() == [("firing", None), ("resolved", None)]
    assert server.get(f"/api/v1/alerts/{alert['id']}").json()["notifications"] == 4
    feeding.set()


def test_kill9_while_pending_delivers_after_restart(make_server, receivers):
    hook, chat = receivers
    server, alert = fire_while_down(make_server, hook, chat)
    server.kill9()
    hook.up(status=200)
    chat.up()
    time.sleep(1)
    assert hook.bodies == [] and chat.bodies == []
    server.start()
    wait_for(lambda: hook.bodies and chat.bodies, what="the deliveries after the restart")
    time.sleep(2)
    assert hook.events() == [("firing", alert["id"])]
    assert chat.events() == [("firing", None)]
    wait_for(lambda: metric(server, "sluice_alert_deliveries_pending") == 0,
             what="the outbox to empty")
    a = server.get(f"/api/v1/alerts/{alert['id']}").json()
    assert a["state"] == "firing" and a["notifications"] == 2, a


def test_restart_keeps_a_stalled_source_firing(make_server, receivers):
    hook, chat = receivers
    hook.up()
    chat.up()
    server = make_server(extra_yaml=config(hook, chat), datasets_yaml=QUIET)
    assert server.post_events("quiet", "{}\n").status_code == 200
    alert = wait_for(lambda: stalled(server), what="the source_stalled alert")[0]
    server.restart()
    time.sleep(3.5)  # several evaluations after the start, each shorter than expected_every
    a = server.get(f"/api/v1/alerts/{alert['id']}").json()
    assert a["state"] == "firing", a
    assert [h["event"] for h in a["history"]] == ["firing"], a["history"]
    assert [x["id"] for x in stalled(server)] == [alert["id"]]
    # rows arrive: now it resolves
    assert server.post_events("quiet", "{}\n").status_code == 200
    wait_for(lambda: server.get(f"/api/v1/alerts/{alert['id']}").json()["state"] == "resolved",
             what="the alert to resolve")
    wait_for(lambda: hook.events(alert["id"]) == [("firing", alert["id"]),
                                                  ("resolved", alert["id"])],
             what="the receiver to see one firing, then the resolution")


@pytest.mark.skipif(STORE != "postgres", reason="several nodes need PostgreSQL")
def test_other_node_delivers_what_the_killed_one_left(make_server, receivers):
    hook, chat = receivers
    hook.up(status=500)
    extra = config(hook, chat)
    a = make_server(extra_yaml=extra, datasets_yaml=QUIET)
    b = make_server(start=False, extra_yaml=extra, datasets_yaml=QUIET)
    b.pg_dbname = a.pg_dbname  # one database, two nodes
    b.write_config(extra_yaml=extra, datasets_yaml=QUIET)
    b.start()

    def leader():
        for n in (a, b):
            if "sentinel" in n.get("/health/detailed", timeout=2).json()["node"]["roles"]:
                return n
    holder = wait_for(leader, what="a node to take the sentinel's role")
    other = b if holder is a else a
    assert holder.post_events("quiet", "{}\n").status_code == 200
    alert = wait_for(lambda: stalled(holder), what="the source_stalled alert")[0]
    wait_for(lambda: (metric(holder, "sluice_alert_delivery_failures_total", "hook") or 0) >= 1,
             what="a failed attempt")
    holder.kill9()
    hook.up(status=200)
    chat.up()
    wait_for(lambda: hook.bodies and chat.bodies, timeout=40,
             what="the other node to deliver")
    wait_for(lambda: metric(other, "sluice_alert_deliveries_pending") == 0,
             what="the outbox to empty")
    assert hook.events() == [("firing", alert["id"])]
    assert chat.events() == [("firing", None)]
    assert other.get(f"/api/v1/alerts/{alert['id']}").json()["notifications"] == 2


def test_retry_backoff_doubles_up_to_its_cap(make_server, receivers):
    hook, chat = receivers
    hook.up(status=500)
    server = make_server(extra_yaml=config(hook, chat, "retry_initial_s: 1\n  retry_max_s: 2"),
                         datasets_yaml=QUIET)

    def waits():
        return [x["retry_in_s"] for x in server.log_lines()
                if x.get("msg") == "delivery failed, will retry" and x["receiver"] == "hook"]
    wait_for(lambda: len(waits()) >= 4, what="four failed attempts")
    assert waits()[:4] == [1, 2, 2, 2]
    assert server.get("/api/v1/alerts").json()["items"][0]["notifications"] == 0

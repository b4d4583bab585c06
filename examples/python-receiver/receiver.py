"""A minimal Partner Callbacks webhook receiver: Python's standard library
and the Standard Webhooks library (see ../README.md).

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 receiver.py

Register http(s)://<your host>/webhooks/<type> as your callback URL for each
notification type: the body is the event's JSON as published, so the path is
what tells the types apart.
"""

import json
import os
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])
# Our deliveries are at most 256 KiB (by default); refuse anything far larger unread.
MAX_BODY = 1 << 20

# Deliveries are at least once: a retry, or a redelivery, carries the same
# webhook-id. This set is in memory, so it forgets on restart and is not
# shared between replicas: a real receiver stores the id (unique key) with
# the event in one database transaction before answering, and keeps it for
# longer than our retries last (about two days).
seen = set()
seen_lock = threading.Lock()
# Answer at once, work after: the handler only queues the event and answers
# 204; this worker thread does the slow part. A queue in memory loses what
# it holds on a crash: a real receiver reads its jobs from that database.
jobs = queue.Queue()


def work():
    while True:
        webhook_id, notification_type, event = jobs.get()
        # Your business logic goes here.
        print(f"processed webhook-id={webhook_id} type={notification_type} event={json.dumps(event)}", flush=True)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        if not self.path.startswith("/webhooks/"):
            return self.answer(404)
        notification_type = self.path.removeprefix("/webhooks/")
        length = int(self.headers.get("content-length") or 0)
        if not 0 <= length <= MAX_BODY:
            return self.answer(413)
        body = self.rfile.read(length)
        try:
            # The raw bytes, as received: a re-encoded body would not verify.
            event = webhook.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as error:
            print(f"refused: {error}", flush=True)
            return self.answer(401)
        webhook_id = self.headers["webhook-id"]
        # Test (echo) notifications say so; real events never do.
        test = self.headers.get("partner-callbacks-test") == "true"
        with seen_lock:
            duplicate = webhook_id in seen
            seen.add(webhook_id)
        outcome = "duplicate" if duplicate else "verified"
        print(f"{outcome} webhook-id={webhook_id} type={notification_type} test={str(test).lower()}", flush=True)
        if not duplicate:
            jobs.put((webhook_id, notification_type, event))
        # A duplicate gets a 2xx too: it was delivered, so we stop retrying.
        self.answer(204)

    def answer(self, status):
        self.send_response(status)
        self.end_headers()

    def log_message(self, format, *args):
        pass  # one line per delivery, above, is enough


if __name__ == "__main__":
    threading.Thread(target=work, daemon=True).start()
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Receiver)
    print(f"listening on http://{host}:{port}/webhooks/<type>", flush=True)
    server.serve_forever()

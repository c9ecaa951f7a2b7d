#!/usr/bin/python3
"""A webhook receiver for Bunker's tests, on 127.0.0.1.

Answers the first --fail-first requests with 503, the rest with 200. Each request is written
to SPOOL as N.json: {"path", "headers", "body"} (the body as text). Prints READY when it
listens, and runs until killed.
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--spool", required=True)
parser.add_argument("--fail-first", type=int, default=0)
args = parser.parse_args()
count = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 503 if count <= args.fail_first else 200
        record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                  "body": body.decode("utf-8"), "status": status}
        base = os.path.join(args.spool, "%04d" % count)
        with open(base + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".tmp", base + ".json")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"busy" if status == 503 else b"ok")

    def log_message(self, *a):
        pass


server = HTTPServer(("127.0.0.1", args.port), Handler)
print("READY", flush=True)
server.serve_forever()

#!/usr/bin/env python3
"""An HTTP proxy in front of a real S3 server that injects the faults the server will not show.

Requests pass through unchanged (the Host header too, so signatures still verify), unless a rule
in the rules file (JSON, re-read on every request) matches: then, up to `times` times, the proxy
answers with a status (and Retry-After), drops the connection before or after forwarding,
forwards and cuts the response body short, forwards a listing without its continuation token,
saying it is complete when it is not (end-listing), or without its first entry (drop-entries), or
forwards a request without its object-lock headers, signed again with the rule's credentials (a
server that accepts a retention and ignores it). Every request is logged to the log file as one line:
`RULE_OR_- METHOD PATH?QUERY STATUS_OR_ACTION`, written before the client sees any of the answer,
so that a test reading the log after its call returns finds the call's requests there.

Rule: {"id": "x", "method": "GET", "path": "/data/", "query": "uploads", "header": "content-md5",
       "action": "status" | "drop" | "forward-then-drop" | "truncate" | "drop-continuation-token" |
                 "end-listing" | "drop-entries" | "strip-retention",
       "access_key": "...", "secret_key": "...",
       "status": 503, "code": "SlowDown", "retry_after": "1", "times": 2}
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import threading

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--upstream", required=True)
parser.add_argument("--rules", required=True)
parser.add_argument("--log", required=True)
args = parser.parse_args()

lock = threading.Lock()
fired = {}


def matching_rule(method, path, headers):
    try:
        with open(args.rules) as f:
            rules = json.load(f)
    except (OSError, ValueError):
        rules = []
    target, _, query = path.partition("?")
    with lock:
        for rule in rules:
            if rule.get("method") and rule["method"] != method:
                continue
            if rule.get("path") and rule["path"] not in target:
                continue
            if rule.get("query") and rule["query"] not in query:
                continue
            if rule.get("header") and rule["header"].lower() not in (k.lower() for k in headers.keys()):
                continue
            times = rule.get("times", 1 << 30)
            if fired.get(rule["id"], 0) >= times:
                continue
            fired[rule["id"]] = fired.get(rule["id"], 0) + 1
            return rule
    return None


LOCK_HEADERS = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold")


def strip_retention(rule, method, path, headers):
    """The headers without the object-lock ones, with the Authorization signed again (SigV4)
    over what is left, so the server sees a valid request that asks for no retention."""
    kept = {k: v for k, v in headers.items() if k.lower() not in LOCK_HEADERS}
    auth = kept.get("Authorization") or kept.get("authorization")
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/([^,]+), ?SignedHeaders=([^,]+), ?Signature=\w+", auth or "")
    if not match:
        return kept
    scope = match.group(2)
    signed = [h for h in match.group(3).split(";") if h not in LOCK_HEADERS]
    lower = {k.lower(): v for k, v in kept.items()}
    target, _, query = path.partition("?")
    canonical = "\n".join([
        method, target, query,
        "".join(f"{h}:{lower.get(h, '').strip()}\n" for h in signed),
        ";".join(signed), lower.get("x-amz-content-sha256", ""),
    ])
    amz_date = lower.get("x-amz-date", "")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + rule["secret_key"]).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    for k in [k for k in kept if k.lower() == "authorization"]:
        del kept[k]
    kept["Authorization"] = f"AWS4-HMAC-SHA256 Credential={rule['access_key']}/{scope}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    return kept


def log(rule, method, path, outcome):
    with lock, open(args.log, "a") as f:
        f.write(f"{rule['id'] if rule else '-'} {method} {path} {outcome}\n")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule = matching_rule(self.command, self.path, self.headers)
        action = rule["action"] if rule else "forward"
        if action == "status":
            code = rule.get("code", "SlowDown")
            payload = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>Injected by the fault proxy</Message></Error>".encode()
            log(rule, self.command, self.path, rule.get("status", 503))
            self.send_response(rule.get("status", 503))
            if rule.get("retry_after"):
                self.send_header("Retry-After", rule["retry_after"])
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if action == "drop":
            log(rule, self.command, self.path, "dropped")
            self.drop()
            return
        upstream = http.client.HTTPConnection(args.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items()}
        if action == "strip-retention":
            headers = strip_retention(rule, self.command, self.path, headers)
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if action == "drop-continuation-token":
            data = re.sub(rb"<NextContinuationToken>[^<]*</NextContinuationToken>", b"", data)
        if action == "end-listing":
            data = re.sub(rb"<NextContinuationToken>[^<]*</NextContinuationToken>", b"", data)
            data = data.replace(b"<IsTruncated>true</IsTruncated>", b"<IsTruncated>false</IsTruncated>")
        if action == "drop-entries":
            data = re.sub(rb"<Contents>.*?</Contents>", b"", data, count=1, flags=re.S)
        if action == "forward-then-drop":
            log(rule, self.command, self.path, f"{response.status} then dropped")
            self.drop()
            return
        outcome = f"{response.status} truncated" if action == "truncate" and self.command != "HEAD" else response.status
        log(rule, self.command, self.path, outcome)
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command == "HEAD":
            return
        if action == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.drop()
            return
        self.wfile.write(data)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Proxy)
server.daemon_threads = True
print("READY", flush=True)
server.serve_forever()

#!/usr/bin/python3
"""A real SMTP server for Bunker's tests (aiosmtpd), on loopback.

Modes: starttls (plain connection, STARTTLS required before AUTH and MAIL), tls (implicit TLS from
the first byte), plain (no TLS, no AUTH). Every message received is written to SPOOL as
N.eml with N.json beside it (envelope sender, recipients, the login used). Prints READY when it
listens, and runs until killed.
"""
import argparse
import asyncio
import json
import os
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--user", default="bunker")
parser.add_argument("--password", default="secret")
parser.add_argument("--spool", required=True)
args = parser.parse_args()


class Spool:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(args.spool, "%04d" % self.count)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        auth = getattr(session, "auth_data", None)
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "login": login,
                       # With implicit TLS every connection is TLS (a plain client
                       # cannot even read the greeting).
                       "tls": args.mode == "tls" or session.ssl is not None}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user \
        and auth_data.password.decode() == args.password
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


context = None
if args.mode != "plain":
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

kwargs = dict(hostname="127.0.0.1", port=args.port, ready_timeout=10)
if args.mode == "starttls":
    kwargs.update(tls_context=context, require_starttls=True, authenticator=authenticate,
                  auth_require_tls=True, auth_required=True)
elif args.mode == "tls":
    kwargs.update(ssl_context=context, authenticator=authenticate, auth_required=True,
                  auth_require_tls=False)
controller = Controller(Spool(), **kwargs)
controller.start()
print("READY", flush=True)
while True:
    time.sleep(3600)

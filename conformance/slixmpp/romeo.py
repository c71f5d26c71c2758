#!/usr/bin/python3
"""Drives slixmpp (an independent XMPP client library) against a running hearth server.

Romeo logs in over STARTTLS with SCRAM, asks Juliet for a subscription, waits for the approval and
her presence, sends her a message and waits for her echo, then leaves a message for an offline
user. Prints one JSON line with what happened; exits non-zero on timeout or failure."""
import asyncio
import sys

from harness import TestClient, run

host, port, jid, password, peer, offline_peer = sys.argv[1:7]
result = {"mechanism": None, "tls": False, "subscribed": False, "peer_presence": None, "echo": None, "roster": None}


class Romeo(TestClient):
    def __init__(self):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_subscribed", self.on_subscribed)
        self.add_event_handler("presence_available", self.on_available)
        self.add_event_handler("auth_success", lambda _: result.update(mechanism=self.plugin["feature_mechanisms"].mech.name))
        self.add_event_handler("ssl_cert", lambda _: result.update(tls=True))

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.send_presence(pto=peer, ptype="subscribe")

    def on_subscribed(self, presence):
        if presence["from"].bare == peer:
            result["subscribed"] = True

    def on_available(self, presence):
        if presence["from"].bare == peer and result["peer_presence"] is None:
            result["peer_presence"] = str(presence["from"])
            self.send_message(mto=peer, mbody="hello from slixmpp", mtype="chat")

    def on_message(self, msg):
        if msg["from"].bare == peer and msg["type"] in ("chat", "normal"):
            result["echo"] = msg["body"]
            self.send_message(mto=offline_peer, mbody="wherefore art thou", mtype="chat")
            result["roster"] = {k: self.client_roster[k]["subscription"] for k in self.client_roster.keys() if k != jid}
            # A round trip after the last message: the server has stored it once the ping returns.
            asyncio.ensure_future(self.finish())

    async def finish(self):
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=5)
        if not self.done.done():
            self.done.set_result(True)


sys.exit(run(Romeo(), host, port, result, plugins=("xep_0199",)))

#!/usr/bin/python3
"""Drives slixmpp's ComponentXMPP (an independent XEP-0114 implementation) against hearth.

An echo gateway connects as a component with its secret; Alice (a slixmpp client) finds it among the
server's disco#items, asks its disco#info (answered by the component's own XEP-0030 plugin), sends it a
message and receives the echo. A second ComponentXMPP with a wrong secret gets the stream error.
Prints one JSON line; exits non-zero on timeout or failure."""
import asyncio
import json
import sys

import slixmpp
from slixmpp.componentxmpp import ComponentXMPP

from harness import TestClient

host, c2s_port, component_port, component, secret, alice_jid, password = sys.argv[1:8]
domain = alice_jid.split("@")[1]
result = {"server_items": None, "identity": None, "echo": None, "echo_from": None, "wrong_secret": None}


class Echo(ComponentXMPP):
    def __init__(self, secret_used):
        super().__init__(component, secret_used, host, int(component_port))
        self.ready = asyncio.get_event_loop().create_future()
        self.stream_error = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="gateway", itype="echo", name="Echo", jid=component)
        self.add_event_handler("session_start", lambda _: self.ready.done() or self.ready.set_result(True))
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("message", self.on_message)

    def on_stream_error(self, err):
        if not self.stream_error.done():
            self.stream_error.set_result(err["condition"])

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            msg.reply("echo: " + msg["body"]).send()


class Alice(TestClient):
    def __init__(self):
        super().__init__(alice_jid, password)
        self.ready = asyncio.get_event_loop().create_future()
        self.echo = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0030")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)

    async def start(self, _):
        self.send_presence()
        self.ready.set_result(True)

    def on_message(self, msg):
        if msg["from"].domain == component and not self.echo.done():
            self.echo.set_result(msg)


async def scenario(echo, alice):
    await asyncio.gather(echo.ready, alice.ready)
    items = await alice["xep_0030"].get_items(jid=domain, timeout=10)
    result["server_items"] = sorted(str(i[0]) for i in items["disco_items"]["items"])
    info = await alice["xep_0030"].get_info(jid=component, timeout=10)
    result["identity"] = [[i[0], i[1], i[3]] for i in info["disco_info"]["identities"]]
    alice.send_message(mto="bot@" + component, mbody="hello", mtype="chat")
    msg = await asyncio.wait_for(alice.echo, 10)
    result["echo"] = msg["body"]
    result["echo_from"] = str(msg["from"])

    intruder = Echo("a wrong secret of some length")
    intruder.auto_reconnect = False
    intruder.connect()
    try:
        result["wrong_secret"] = await asyncio.wait_for(intruder.stream_error, 10)
    finally:
        intruder.disconnect()


async def main():
    echo, alice = Echo(secret), Alice()
    echo.connect()
    alice.connect((host, int(c2s_port)))
    code = 0
    try:
        await asyncio.wait_for(scenario(echo, alice), 40)
    except Exception as e:
        result["error"] = repr(e)
        code = 1
    for c in (echo, alice):
        c.disconnect()
    print(json.dumps(result), flush=True)
    return code


sys.exit(asyncio.get_event_loop().run_until_complete(main()))

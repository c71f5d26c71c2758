#!/usr/bin/python3
"""Drives slixmpp's PEP plugins (XEP-0060, 0163, 0115) on two federating hearth servers.

Alice (on one server) and Bob (on the other) are contacts. Each slixmpp announces OMEMO devicelist
+notify interest only through its own entity caps (XEP-0115); each publishes a devicelist with
publish-options access_model=open before its initial presence, so the other hears it as the last item
once the servers have learned the caps over s2s, then publishes again and the other hears the live
notification. Prints one JSON line; exits non-zero on timeout or failure."""
import asyncio
import json
import sys
import xml.etree.ElementTree as ET

from harness import TestClient, run_scenario

alice_port, bob_port, alice_jid, bob_jid, password = sys.argv[1:6]
NODE = "eu.siacs.conversations.axolotl.devicelist"
NS = "eu.siacs.conversations.axolotl"
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")
result = {"alice_heard": [], "bob_heard": []}


def devicelist(*ids):
    root = ET.Element("{%s}list" % NS)
    for i in ids:
        ET.SubElement(root, "{%s}device" % NS, {"id": str(i)})
    return root


class Client(TestClient):
    def __init__(self, jid, peer, heard, first):
        super().__init__(jid, password)
        self.peer, self.heard, self.first = peer, heard, first
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("pubsub_publish", self.on_publish)
        for name in PLUGINS:
            self.register_plugin(name)

    async def publish(self, *ids):
        form = self.plugin["xep_0004"].make_form("submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
        form.add_field(var="pubsub#access_model", value="open")
        await self.plugin["xep_0060"].publish(None, NODE, id="current", payload=devicelist(*ids), options=form)

    async def start(self, _):
        # Published while away: the contact gets it as the last item when this presence reaches its server.
        try:
            await self.publish(*self.first)
            await self.get_roster()
            # The +notify interest in the caps of the bound JID, before the initial presence carries them.
            self.plugin["xep_0163"].add_interest(NODE)
            await self.plugin["xep_0115"].update_caps(broadcast=False)
            self.send_presence()
            self.ready.set_result(True)
        except Exception as e:  # IqError, timeout
            self.ready.set_exception(RuntimeError("%s: %r" % (self.boundjid, e)))

    def on_publish(self, msg):
        if msg["from"].bare != self.peer or msg["pubsub_event"]["items"]["node"] != NODE:
            return
        payload = msg["pubsub_event"]["items"]["item"].xml.find("{%s}list" % NS)
        self.heard.append([d.get("id") for d in payload.findall("{%s}device" % NS)])
        self.changed.set()

    async def hear(self, ids):
        while ids not in self.heard:
            self.changed.clear()
            await self.changed.wait()


async def scenario(alice, bob):
    await asyncio.gather(alice.ready, bob.ready)
    await asyncio.gather(alice.hear(["2"]), bob.hear(["1"]))
    await alice.publish(1, 3)
    await bob.hear(["1", "3"])
    await bob.publish(2, 4)
    await alice.hear(["2", "4"])


alice = Client(alice_jid, bob_jid, result["alice_heard"], (1,))
bob = Client(bob_jid, alice_jid, result["bob_heard"], (2,))
sys.exit(run_scenario([(alice, "127.0.0.1", alice_port), (bob, "127.0.0.1", bob_port)], scenario(alice, bob), result))

#!/usr/bin/python3
"""Drives slixmpp's PEP plugins (XEP-0060, 0163, 0084, 0115, 0223, 0048, 0054) against a running hearth server.

Alice and Bob are contacts. Bob's slixmpp announces avatar +notify interest only through its own entity
caps (XEP-0115), which the server must query and verify before it notifies him (or sends him the last item). Alice publishes an avatar with the XEP-0084 plugin; Bob
hears the metadata event, fetches the data, and reads the same picture from Alice's vCard (XEP-0398).
Alice stores XEP-0048 bookmarks in private XML and reads them back as XEP-0402 items, and keeps private
data with XEP-0223. Prints one JSON line; exits non-zero on timeout or failure."""
import asyncio
import hashlib
import json
import sys

from slixmpp.plugins.xep_0048 import Bookmarks
from harness import TestClient, run_scenario

host, port, alice_jid, bob_jid, password = sys.argv[1:6]
result = {"metadata_id": None, "avatar_ok": None, "vcard_ok": None,
          "bookmark_items": None, "private_items": None, "publish_options": None}
IMAGE = bytes(range(256)) * 8
AVATAR_ID = hashlib.sha1(IMAGE).hexdigest()
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0054", "xep_0223", "xep_0048", "xep_0049")


class Client(TestClient):
    def __init__(self, jid):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)
        for name in PLUGINS:
            self.register_plugin(name)

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.ready.set_result(True)


class Bob(Client):
    def __init__(self):
        super().__init__(bob_jid)
        self.metadata = asyncio.get_event_loop().create_future()
        self.add_event_handler("avatar_metadata_publish", self.on_metadata)

    def on_metadata(self, msg):
        info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"]
        if info and not self.metadata.done():
            self.metadata.set_result(info[0]["id"])


async def scenario(alice, bob):
    await asyncio.gather(alice.ready, bob.ready)
    avatar = alice.plugin["xep_0084"]
    await avatar.publish_avatar(IMAGE)
    await avatar.publish_avatar_metadata([{"id": AVATAR_ID, "type": "image/png", "bytes": len(IMAGE)}])
    result["metadata_id"] = await asyncio.wait_for(bob.metadata, 10)
    data = await bob.plugin["xep_0084"].retrieve_avatar(alice.boundjid.bare, AVATAR_ID)
    result["avatar_ok"] = data["pubsub"]["items"]["item"]["avatar_data"]["value"] == IMAGE

    # XEP-0398: the same picture in Alice's vCard, for vCard-based clients.
    for _ in range(100):
        card = await bob.plugin["xep_0054"].get_vcard(alice.boundjid.bare)
        binval = card["vcard_temp"]["PHOTO"]["BINVAL"]
        if binval:
            result["vcard_ok"] = binval == IMAGE
            break
        await asyncio.sleep(0.1)

    # XEP-0048 in private XML (XEP-0049), read back as XEP-0402 items.
    marks = Bookmarks()
    marks.add_conference("verona@conference.localhost", "romeo", name="Verona", autojoin=True)
    await alice.plugin["xep_0048"].set_bookmarks(marks, method="xep_0049")
    items = await alice.plugin["xep_0060"].get_items(alice.boundjid.bare, "urn:xmpp:bookmarks:1")
    result["bookmark_items"] = [i["id"] for i in items["pubsub"]["items"]]

    # XEP-0223: private data in PEP with the persistent-storage publish-options.
    await alice.plugin["xep_0223"].store(marks, node="storage:bookmarks", id="current")
    stored = await alice.plugin["xep_0223"].retrieve("storage:bookmarks")
    result["private_items"] = [i["id"] for i in stored["pubsub"]["items"]]
    try:
        await bob.plugin["xep_0060"].get_items(alice.boundjid.bare, "storage:bookmarks")
        result["publish_options"] = "readable by a contact"
    except Exception as e:  # IqError: closed-node
        result["publish_options"] = e.iq["error"]["condition"]
    alice.done.set_result(True)


alice, bob = Client(alice_jid), Bob()
bob.plugin["xep_0163"].add_interest("urn:xmpp:avatar:metadata")
sys.exit(run_scenario([(alice, host, port), (bob, host, port)], scenario(alice, bob), result))

#!/usr/bin/python3
"""Drives slixmpp's XEP-0191 plugin against a running hearth server.

Juliet logs in, asks for her block list (so that she gets pushes), blocks a contact, sees the push and the
list, then unblocks it. Prints one JSON line with what happened; exits non-zero on timeout or failure."""
import asyncio
import sys

from harness import TestClient, run

host, port, jid, password, contact = sys.argv[1:6]
result = {"features": False, "before": None, "pushed": None, "during": None, "unpushed": None, "after": None}


class Juliet(TestClient):
    def __init__(self):
        super().__init__(jid, password)
        self.pushes = asyncio.Queue()
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(("block", sorted(str(j) for j in iq["block"]["items"]))))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(("unblock", sorted(str(j) for j in iq["unblock"]["items"]))))

    async def start(self, _):
        try:
            info = await self.plugin["xep_0030"].get_info(jid=self.boundjid.bare)
            result["features"] = "urn:xmpp:blocking" in info["disco_info"]["features"]
            blocklist = self.plugin["xep_0191"]
            result["before"] = sorted(str(j) for j in (await blocklist.get_blocked())["blocklist"]["items"])
            await blocklist.block([contact])
            result["pushed"] = await asyncio.wait_for(self.pushes.get(), 5)
            result["during"] = sorted(str(j) for j in (await blocklist.get_blocked())["blocklist"]["items"])
            await blocklist.unblock([contact])
            result["unpushed"] = await asyncio.wait_for(self.pushes.get(), 5)
            result["after"] = sorted(str(j) for j in (await blocklist.get_blocked())["blocklist"]["items"])
            self.done.set_result(True)
        except Exception as e:
            self.fail(repr(e))


sys.exit(run(Juliet(), host, port, result, plugins=("xep_0030", "xep_0191")))

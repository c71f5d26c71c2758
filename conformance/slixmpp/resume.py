#!/usr/bin/python3
"""Drives slixmpp's XEP-0198 support against a running hearth server: stream management with resumption.

Romeo logs in (slixmpp enables SM with resumption after binding), announces READY with his full JID,
and when the message "before" arrives drops his connection abruptly, as a phone that changes networks
does, and announces DOWN. A second later he reconnects; slixmpp resumes the session (RESUMED). He
waits for the message "after" and prints one JSON line: every message body received, in order."""
import asyncio
import json
import sys

from harness import TestClient

host, port, jid, password = sys.argv[1:5]
result = {"enabled": False, "resumed": False, "sessions": 0, "bodies": []}


class Romeo(TestClient):
    def __init__(self):
        super().__init__(jid, password)
        self.dropped = False
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("sm_enabled", lambda st: result.update(enabled=bool(st["id"])))
        self.add_event_handler("session_resumed", self.on_resumed)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)

    def start(self, _):
        # session_start fires for a new session only, never for a resumed one.
        result["sessions"] += 1
        self.send_presence()
        print("READY " + str(self.boundjid), flush=True)

    def on_message(self, msg):
        if not msg["body"]:
            return
        result["bodies"].append(msg["body"])
        if msg["body"] == "before" and not self.dropped:
            self.dropped = True
            self.transport.abort()
        elif msg["body"] == "after" and not self.done.done():
            self.done.set_result(True)

    def on_disconnected(self, _):
        if self.dropped and not result["resumed"]:
            print("DOWN", flush=True)
            asyncio.get_event_loop().call_later(1.0, lambda: self.connect((host, int(port))))

    def on_resumed(self, _):
        result["resumed"] = True
        print("RESUMED", flush=True)


async def main():
    xmpp = Romeo()
    xmpp.register_plugin("xep_0198")
    xmpp.connect((host, int(port)))
    try:
        await asyncio.wait_for(xmpp.done, 20)
        code = 0
    except Exception as e:
        result["error"] = repr(e)
        code = 1
    xmpp.disconnect()
    print(json.dumps(result), flush=True)
    return code


sys.exit(asyncio.get_event_loop().run_until_complete(main()))

#!/usr/bin/python3
"""Drives slixmpp's XEP-0050 and XEP-0133 plugins (an independent ad-hoc commands client) against hearth.

The admin lists the commands through the XEP-0133 plugin, and runs them with slixmpp's own session
workflow (execute, fill the form it parsed, complete): add-user, get-online-users-num,
get-online-users-list, announce (Alice receives it), disable-user (Alice's stream ends), reenable-user.
Alice, not an admin, is refused. Prints one JSON line; exits non-zero on timeout or failure."""
import asyncio
import json
import sys

from harness import TestClient

host, port, admin_jid, alice_jid, password = sys.argv[1:6]
domain = admin_jid.split("@")[1]
result = {"commands": None, "non_admin": None, "added": None, "online_num": None, "online_list": None,
          "announcement": None, "alice_stream_error": None, "reenabled_login": None}
PLUGINS = ("xep_0030", "xep_0004", "xep_0050", "xep_0133")


class Client(TestClient):
    def __init__(self, jid):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)
        for name in PLUGINS:
            self.register_plugin(name)

    async def start(self, _):
        self.send_presence()
        self.ready.set_result(True)


class Alice(Client):
    def __init__(self):
        super().__init__(alice_jid)
        self.announcement = asyncio.get_event_loop().create_future()
        self.stream_error = asyncio.get_event_loop().create_future()
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("stream_error", self.on_stream_error)

    def on_message(self, msg):
        if msg["from"].bare == domain and not self.announcement.done():
            self.announcement.set_result({"type": msg["type"], "subject": msg["subject"], "body": msg["body"]})

    def on_stream_error(self, err):
        if not self.stream_error.done():
            self.stream_error.set_result(err["condition"])


def run_command(client, name, values):
    """Runs one XEP-0133 command with slixmpp's session workflow; resolves to the final <command/> iq."""
    loop = asyncio.get_event_loop()
    outcome = loop.create_future()

    def on_error(iq, session):
        client["xep_0050"].terminate_command(session)
        if not outcome.done():
            outcome.set_exception(RuntimeError(iq["error"]["condition"]))

    def on_done(iq, session):
        if not outcome.done():
            outcome.set_result(iq)

    def on_form(iq, session):
        if iq["command"]["status"] == "completed":
            on_done(iq, session)
            return
        form = iq["command"]["form"]
        answers = {}
        for var in form.get_fields():
            if var in values:
                answers[var] = values[var]
        form["type"] = "submit"
        form.set_values(answers)
        session["payload"] = form
        session["next"] = on_done
        client["xep_0050"].complete_command(session)

    getattr(client["xep_0133"], name.replace("-", "_"))(session={"next": on_form, "error": on_error})
    return asyncio.wait_for(outcome, 10)


def form_value(iq, var):
    return iq["command"]["form"].get_fields()[var].get_value()


async def scenario(admin, alice):
    await asyncio.gather(admin.ready, alice.ready)
    items = await admin["xep_0133"].get_commands()
    result["commands"] = sorted(i[1].rsplit("#", 1)[1] for i in items["disco_items"]["items"])

    try:
        await run_command(alice, "add-user", {})
        result["non_admin"] = "allowed"
    except RuntimeError as e:
        result["non_admin"] = str(e)

    done = await run_command(admin, "add-user", {"accountjid": "mercutio@" + domain, "password": "mercutio-pw",
                                                 "password-verify": "mercutio-pw"})
    result["added"] = done["command"]["notes"][0][1] if done["command"]["notes"] else None
    result["online_num"] = int(form_value(await run_command(admin, "get-online-users-num", {}), "onlineusersnum"))
    listed = await run_command(admin, "get-online-users-list", {"max_items": "none"})
    result["online_list"] = sorted(str(j) for j in form_value(listed, "onlineuserjids"))

    await run_command(admin, "announce", {"subject": "Notice", "announcement": "Maintenance at noon"})
    result["announcement"] = await asyncio.wait_for(alice.announcement, 10)

    await run_command(admin, "disable-user", {"accountjids": [alice_jid]})
    result["alice_stream_error"] = await asyncio.wait_for(alice.stream_error, 10)
    await run_command(admin, "reenable-user", {"accountjids": [alice_jid]})

    # Alice logs in again once re-enabled.
    again = Client(alice_jid)
    again.connect((host, int(port)))
    try:
        await asyncio.wait_for(again.ready, 10)
        result["reenabled_login"] = True
    finally:
        again.disconnect()
    admin.done.set_result(True)


async def main():
    admin, alice = Client(admin_jid), Alice()
    alice.auto_reconnect = False
    for c in (admin, alice):
        c.connect((host, int(port)))
    code = 0
    try:
        await asyncio.wait_for(scenario(admin, alice), 40)
    except Exception as e:
        result["error"] = repr(e)
        code = 1
    for c in (admin, alice):
        c.disconnect()
    print(json.dumps(result), flush=True)
    return code


sys.exit(asyncio.get_event_loop().run_until_complete(main()))

"""What every slixmpp driver script shares: connect, wait for the scenario, print one JSON line."""
import asyncio
import json
import ssl

import slixmpp


class TestClient(slixmpp.ClientXMPP):
    """A client for the test server: its self-signed development certificate is accepted; `ready` is the
    future a scenario's client resolves once its session has started, `done` the one the scenario resolves
    when it has finished."""

    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.ready = asyncio.get_event_loop().create_future()
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))

    def fail(self, why):
        """Ends the scenario (and the wait for the session) with `why` (once)."""
        for f in (self.done, self.ready):
            if not f.done():
                f.set_exception(RuntimeError(why))


def run(xmpp, host, port, result, plugins=(), timeout=20):
    """Connects `xmpp` (with its `done` future) and returns the exit code after printing `result`."""
    async def main():
        for name in plugins:
            xmpp.register_plugin(name)
        xmpp.connect((host, int(port)))
        try:
            await asyncio.wait_for(xmpp.done, timeout)
            code = 0
        except Exception as e:  # timeout or failure: report what we got so far
            result["error"] = repr(e)
            code = 1
        xmpp.disconnect()
        print(json.dumps(result), flush=True)
        return code
    return asyncio.get_event_loop().run_until_complete(main())


def run_scenario(clients, scenario, result, timeout=30):
    """Connects each (client, host, port), runs the `scenario` coroutine for at most `timeout` seconds, then
    disconnects them all and returns the exit code after printing `result` (with the error, if any)."""
    async def main():
        for xmpp, host, port in clients:
            xmpp.connect((host, int(port)))
        try:
            await asyncio.wait_for(scenario, timeout)
            code = 0
        except Exception as e:  # timeout or failure: report what we got so far
            result["error"] = repr(e)
            code = 1
        for xmpp, _, _ in clients:
            xmpp.disconnect()
        print(json.dumps(result), flush=True)
        return code
    return asyncio.get_event_loop().run_until_complete(main())

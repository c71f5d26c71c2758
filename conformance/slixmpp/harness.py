"""What every slixmpp driver script shares: connect, wait for the scenario, print one JSON line."""
import asyncio
import json


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

#!/usr/bin/python3
"""Drives slixmpp's XEP-0363 plugin against a running hearth server.

Romeo finds the upload service through disco (items of his server, then their info), uploads random bytes
with the plugin's upload_file (slot request, then the HTTP PUT with the slot's headers), downloads the
URL it got with aiohttp, and asks for a slot over the advertised maximum. Prints one JSON line."""
import asyncio
import hashlib
import io
import os
import sys

import aiohttp
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0363.http_upload import FileTooBig

from harness import TestClient, run

host, port, jid, password, size = sys.argv[1:6]
size = int(size)
result = {"service": None, "max_file_size": None, "url": None, "sha256_up": None, "sha256_down": None,
          "content_type": None, "too_big_local": None, "too_big_error": None}


class Romeo(TestClient):
    def __init__(self):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        try:
            plugin = self.plugin["xep_0363"]
            # COMPAT: Debian's slixmpp 1.8.3 passes coroutines to asyncio.wait in get_info_from_domain, which
            # Python 3.11 refuses; the plugin's discovery is done here the same way (items of the domain,
            # then the info of each: identity store/file, the feature and the max-file-size form).
            disco = self.plugin["xep_0030"]
            items = await disco.get_items(jid=self.boundjid.domain)
            for item_jid, _node, _name in items["disco_items"]["items"]:
                info = await disco.get_info(jid=item_jid)
                if ("store", "file") in [(i[0], i[1]) for i in info["disco_info"]["identities"]] \
                        and "urn:xmpp:http:upload:0" in info["disco_info"]["features"]:
                    plugin.upload_service = info["from"]
                    for form in info["disco_info"].iterables:
                        values = form["values"]
                        if values.get("FORM_TYPE") == ["urn:xmpp:http:upload:0"]:
                            plugin.max_file_size = int(values["max-file-size"])
            data = os.urandom(size)
            result["sha256_up"] = hashlib.sha256(data).hexdigest()
            url = await plugin.upload_file("portrait of juliet.png", size=size, content_type="image/png",
                                           input_file=io.BytesIO(data), timeout=10)
            result["service"] = str(plugin.upload_service)
            result["max_file_size"] = plugin.max_file_size
            result["url"] = url
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as res:
                    body = await res.read()
                    result["sha256_down"] = hashlib.sha256(body).hexdigest()
                    result["content_type"] = res.headers.get("Content-Type")
            # The plugin refuses by itself a file over the advertised max-file-size…
            try:
                await plugin.upload_file("huge.bin", size=plugin.max_file_size + 1, input_file=io.BytesIO(b""))
            except FileTooBig:
                result["too_big_local"] = True
            # …and the service refuses a slot request for one, with the maximum in the error.
            try:
                await plugin.request_slot(plugin.upload_service, "huge.bin", plugin.max_file_size + 1, "application/octet-stream")
            except IqError as e:
                err = e.iq["error"]
                too_large = err.xml.find("{urn:xmpp:http:upload:0}file-too-large")
                result["too_big_error"] = [err["condition"], too_large.findtext("{urn:xmpp:http:upload:0}max-file-size") if too_large is not None else None]
            self.done.set_result(True)
        except Exception as e:
            self.fail(repr(e))


sys.exit(run(Romeo(), host, port, result, plugins=("xep_0030", "xep_0128", "xep_0363")))

// The XML namespaces more than one module speaks (core, the mobile adapter and extensions alike); a
// namespace only one module uses stays with that module.
export const NS = {
  client: "jabber:client",
  server: "jabber:server",
  stream: "http://etherx.jabber.org/streams",
  streams: "urn:ietf:params:xml:ns:xmpp-streams",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  framing: "urn:ietf:params:xml:ns:xmpp-framing",
  roster: "jabber:iq:roster",
  rosterver: "urn:xmpp:features:rosterver",
  delay: "urn:xmpp:delay",
  sid: "urn:xmpp:sid:0",
  /** XEP-0004 */
  dataForms: "jabber:x:data",
  /** XEP-0030 */
  discoInfo: "http://jabber.org/protocol/disco#info",
  discoItems: "http://jabber.org/protocol/disco#items",
  /** XEP-0045 */
  muc: "http://jabber.org/protocol/muc",
  mucUser: "http://jabber.org/protocol/muc#user",
  mucAdmin: "http://jabber.org/protocol/muc#admin",
  mucOwner: "http://jabber.org/protocol/muc#owner",
  mucRoomConfig: "http://jabber.org/protocol/muc#roomconfig",
  /** XEP-0249 */
  conference: "jabber:x:conference",
  /** XEP-0054 */
  vcard: "vcard-temp",
  /** XEP-0199 */
  ping: "urn:xmpp:ping",
  /** XEP-0297 */
  forward: "urn:xmpp:forward:0",
  /** XEP-0334 */
  hints: "urn:xmpp:hints",
  /** XEP-0184 */
  receipts: "urn:xmpp:receipts",
  /** XEP-0333 */
  chatMarkers: "urn:xmpp:chat-markers:0",
  /** XEP-0313 and the XEPs it is queried with (XEP-0431) */
  mam: "urn:xmpp:mam:2",
  mamExtended: "urn:xmpp:mam:2#extended",
  fulltext: "urn:xmpp:fulltext:0",
} as const;

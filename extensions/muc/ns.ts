// Namespaces of XEP-0045 and the XEPs a room speaks.
export const NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo";
export const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";
export const NS_SELF_PING_OPTIMIZATION = "http://jabber.org/protocol/muc#self-ping-optimization";

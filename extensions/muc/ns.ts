// Namespaces of XEP-0045 and the XEPs a room speaks.
export const NS_MUC = "http://jabber.org/protocol/muc";
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
export const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
export const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
export const NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig";
export const NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo";
export const NS_DATA = "jabber:x:data";
export const NS_CONFERENCE = "jabber:x:conference";
export const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";
export const NS_SID = "urn:xmpp:sid:0";
export const NS_DELAY = "urn:xmpp:delay";
export const NS_PING = "urn:xmpp:ping";
export const NS_SELF_PING_OPTIMIZATION = "http://jabber.org/protocol/muc#self-ping-optimization";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
export const NS_HINTS = "urn:xmpp:hints";

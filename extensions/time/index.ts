// XEP-0202: Entity Time, answered by the server for its own domain.
import { defineModule } from "../../src/modules/module.js";
import { xml } from "../../src/xml/element.js";

export const NS_TIME = "urn:xmpp:time";

/** The local offset from UTC as XEP-0082 TZD: "+02:00", "-05:30", "+00:00" (XEP-0202 §2). */
export function timezoneOffset(date: Date): string {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** XEP-0082 DateTime in UTC, without fractions of a second: "2006-12-19T17:58:35Z". */
export function utcDateTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export const time = defineModule({
  name: "time",
  xep: [{ spec: "XEP-0202", title: "Entity Time", version: "2.0", status: "complete" }],
  setup(api) {
    api.addFeature(NS_TIME);
    api.onIq("get", "host", NS_TIME, "time", () => {
      const now = new Date();
      // XEP-0202 §2: both <tzo/> and <utc/> are required.
      return xml("time", { xmlns: NS_TIME }, xml("tzo", null, timezoneOffset(now)), xml("utc", null, utcDateTime(now)));
    });
  },
});

// A minimal authoritative DNS server on loopback UDP for federation tests (RFC 1035 wire format): SRV and
// A records from a table, NXDOMAIN for everything else. Lets a test exercise real SRV lookups, ours and
// other servers', without touching the machine's resolver configuration.
import dgram from "node:dgram";

export interface DnsRecords {
  /** "_xmpp-server._tcp.example.test" → targets. */
  srv?: Record<string, Array<{ target: string; port: number; priority?: number; weight?: number }>>;
  /** "example.test" → IPv4 address. */
  a?: Record<string, string>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter((l) => l !== "");
  return Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")])), Buffer.from([0])]);
}

function answer(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(60, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

function respond(query: Buffer, records: DnsRecords): Buffer | null {
  if (query.length < 12) return null;
  let i = 12;
  const labels: string[] = [];
  while (i < query.length && query[i] !== 0) {
    const len = query[i]!;
    labels.push(query.subarray(i + 1, i + 1 + len).toString("ascii"));
    i += len + 1;
  }
  const end = i + 5;
  if (end > query.length) return null;
  const qtype = query.readUInt16BE(i + 1);
  const name = labels.join(".").toLowerCase();
  const answers: Buffer[] = [];
  if (qtype === TYPE_SRV) {
    for (const r of records.srv?.[name] ?? []) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(r.priority ?? 0, 0);
      fixed.writeUInt16BE(r.weight ?? 0, 2);
      fixed.writeUInt16BE(r.port, 4);
      answers.push(answer(TYPE_SRV, Buffer.concat([fixed, encodeName(r.target)])));
    }
  } else if (qtype === TYPE_A && records.a?.[name]) {
    answers.push(answer(TYPE_A, Buffer.from(records.a[name]!.split(".").map(Number))));
  }
  const known = records.srv?.[name] !== undefined || records.a?.[name] !== undefined;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, AA, the query's RD; NXDOMAIN (3) for names not in the table.
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, query.subarray(12, end), ...answers]);
}

export async function startDnsServer(address: string, records: DnsRecords): Promise<{ port: number; stop(): Promise<void> }> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, rinfo) => {
    const out = respond(msg, records);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, address, () => resolve()));
  return { port: socket.address().port, stop: () => new Promise((resolve) => socket.close(() => resolve())) };
}

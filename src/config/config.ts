// Configuration: one YAML file merged over defaults, then HEARTH_* environment variables, then
// programmatic overrides. Every layer is validated on its own so an error names where the bad value
// came from (file and line, variable, or overrides).
import { readFileSync } from "node:fs";
import path from "node:path";
import { Document, isMap, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument } from "yaml";
import {
  checkLeaf,
  describeValue,
  ENV_PREFIX,
  envName,
  expectation,
  formatKeyPath,
  isPlainObject,
  keyFromEnvSegment,
  leaves,
  optionsSectionOf,
  schema,
  schemaWithModules,
  sectionAt,
  type Checked,
  type Leaf,
  type ModuleOptionsDecl,
  type OptionsSection,
  type PathSegment,
  type Section,
} from "./schema.js";

export { KNOWN_SASL_MECHANISMS } from "./schema.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface Config {
  /** Served XMPP domains, lower-case; the first is the default. */
  hosts: string[];
  /** Absolute. */
  dataDir: string;
  log: { level: LogLevel; stanzas: boolean; format: "auto" | "json" | "pretty" };
  c2s: {
    bind: string;
    /** null: disabled; 0: any free port. */
    port: number | null;
    directTlsPort: number | null;
    requireTls: boolean;
    resourceConflict: "kick-old" | "refuse";
    /** Bytes a client session may leave unread before it is closed (policy-violation). */
    maxOutboundBytes: number;
    /** XEP-0198: how long a dropped session with resumption enabled waits for its client. */
    smResumeSeconds: number;
    /** XEP-0198: resumption records in the store (resume after a restart or on another node). */
    smDurable: boolean;
  };
  http: {
    bind: string;
    port: number | null;
    websocketPath: string;
    corsOrigins: string[];
    bosh: { enabled: boolean; path: string; maxWait: number; maxHold: number; inactivitySeconds: number };
  };
  ops: { metrics: boolean; networks: string[] };
  /** The server API (src/api). `keys`: name → "sha256:<hex>" or the key; `scopes`: name → "users,tokens,…". */
  api: {
    keys: Record<string, string>; scopes: Record<string, string>; maxBodyBytes: number;
    requestsPerSecond: number; requestBurst: number; tokenTtlSeconds: number;
  };
  /** `accounts` are bare JIDs, lower-cased. */
  admin: { accounts: string[]; networks: string[]; sampleSeconds: number; sessionMinutes: number };
  /** Paths are absolute. */
  tls: { cert: string | null; key: string | null; certs: Record<string, { cert: string; key: string }> };
  /** `sqlite.path` is absolute, or ":memory:". `postgres.url` is set when the driver is postgres. */
  storage: {
    driver: "sqlite" | "postgres"; sqlite: { path: string }; postgres: { url: string | null; poolSize: number };
    retention: { days: number; unarchivedDays: number; intervalSeconds: number };
  };
  auth: {
    scramIterations: number;
    mechanisms: string[];
    allowPlainInsecure: boolean;
    sasl2: boolean;
    channelBinding: boolean;
    fastTokenTtlSeconds: number;
    maxFailures: number;
    maxFailuresPerAccount: number;
    failureWindowSeconds: number;
    failureDelayMs: number;
    maxFailureDelayMs: number;
    exemptNetworks: string[];
  };
  registration: { policy: "open" | "closed" | "localhost"; minPasswordLength: number };
  limits: {
    maxStanzaBytes: number;
    maxConnectionsPerIp: number;
    maxConnections: number;
    stanzasPerSecond: number;
    stanzaBurst: number;
    authTimeoutSeconds: number;
    idleTimeoutSeconds: number;
  };
  offline: { maxPerUser: number };
  s2s: {
    bind: string;
    port: number | null;
    directTlsPort: number | null;
    /** domain → "host:port" (STARTTLS) or "tls://host:port" (direct TLS). */
    routes: Record<string, string>;
    requireTls: boolean;
    requireValidCertificates: boolean;
    /** Absolute. */
    caFile: string | null;
    dialbackSecret: string | null;
    allow: string[];
    deny: string[];
    connectTimeoutSeconds: number;
    idleTimeoutSeconds: number;
    keepaliveSeconds: number;
    maxQueuedStanzas: number;
    maxStanzaBytesPreAuth: number;
    stanzasPerSecond: number;
    stanzaBurst: number;
    maxStreamsPerIp: number;
    maxStreamsPerDomain: number;
  };
  /** External components (XEP-0114): `secrets` is component domain → shared secret. */
  components: { bind: string; port: number | null; secrets: Record<string, string>; stanzasPerSecond: number; stanzaBurst: number; keepaliveSeconds: number; pingTimeoutSeconds: number };
  cluster: { redisUrl: string | null; nodeId: string | null; heartbeatSeconds: number; deadAfterSeconds: number };
  modules: { disabled: string[]; [moduleName: string]: unknown };
}

export type DeepPartial<T> = T extends readonly (infer U)[]
  ? U[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> | undefined }
    : T;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /**
   * @param key the config key path (`c2s.port`), the environment variable (`HEARTH_C2S__PORT`), or
   *   "" for problems with the file as a whole.
   * @param message names the key and the problem, ready to show to a user.
   */
  constructor(
    readonly key: string,
    message: string,
    readonly location?: { file: string; line?: number },
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults

type Tree = Record<string, unknown>;

function schemaDefaults(section: Section): Tree {
  const out: Tree = {};
  for (const [key, node] of Object.entries(section.fields)) {
    out[key] = node.kind === "section" ? schemaDefaults(node) : structuredClone(node.default);
  }
  return out;
}

/** The defaults; with `modules`, each module's options at their defaults too. */
export function defaultConfig(cwd: string = process.cwd(), modules?: readonly ModuleOptionsDecl[]): Config {
  const root = rootSchema(modules);
  return finish(schemaDefaults(root), cwd, root);
}

function rootSchema(modules: readonly ModuleOptionsDecl[] | undefined): Section {
  return modules === undefined ? schema : schemaWithModules(modules);
}

// ---------------------------------------------------------------------------------------------
// Reading one layer (file or overrides) against the schema

/** Where a layer came from: builds the error for a bad value at `path`. */
interface Origin {
  fail(path: PathSegment[], problem: string): ConfigError;
}

function readSection(raw: unknown, section: Section, at: PathSegment[], origin: Origin): Tree {
  if (raw === null || raw === undefined) return {};
  if (!isPlainObject(raw)) throw origin.fail(at, `must be a mapping of keys, got ${describeValue(raw)}`);
  const out: Tree = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    const node = section.fields[key];
    const keyPath = [...at, key];
    if (node === undefined) {
      if (section.openEntries === undefined) throw origin.fail(keyPath, unknownKeyProblem(key, section, at));
      if (value !== null && !isPlainObject(value)) {
        throw origin.fail(keyPath, `must be a mapping of options for module "${key}", got ${describeValue(value)}`);
      }
      out[key] = value === null ? {} : structuredClone(value);
    } else if (node.kind === "section") {
      out[key] = readSection(value, node, keyPath, origin);
    } else {
      const checked = checkLeaf(node, value, "yaml");
      if (!checked.ok) throw origin.fail([...keyPath, ...(checked.at ?? [])], checked.problem);
      out[key] = checked.value;
    }
  }
  return out;
}

function unknownKeyProblem(key: string, section: Section, at: PathSegment[]): string {
  const known = Object.keys(section.fields);
  if (known.length === 0 && section.openEntries === undefined) return `unknown key (${formatKeyPath(at)} takes no options)`;
  const dotted = key.split(".");
  if (dotted.length > 1 && sectionAt(dotted.slice(0, -1), section)) {
    return `unknown key (write nested keys as a nested mapping, not "${key}")`;
  }
  const squash = (s: string) => s.toLowerCase().replace(/[_-]/g, "");
  const match =
    known.find((k) => squash(k) === squash(key)) ??
    known.find((k) => key.length > 2 && editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  const hint = match === undefined ? `known keys: ${known.join(", ")}` : `did you mean "${formatKeyPath([...at, match])}"?`;
  return `unknown key (${hint})`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function failAt(suffix: (path: PathSegment[]) => string, location?: (path: PathSegment[]) => ConfigError["location"]): Origin {
  return {
    fail(at, problem) {
      const key = formatKeyPath(at);
      return new ConfigError(key, `${key === "" ? "configuration" : key}: ${problem}${suffix(at)}`, location?.(at));
    },
  };
}

function readFileLayer(file: string, root: Section): Tree {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "file not found" : code === "EACCES" ? "permission denied" : (err as Error).message;
    throw new ConfigError("", `cannot read config file ${file}: ${why}`, { file });
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    const line = syntax.linePos?.[0]?.line;
    throw new ConfigError("", `${file}: invalid YAML: ${syntax.message.trimEnd()}`, { file, line });
  }
  const lineOf = (at: PathSegment[]): number | undefined => {
    const offset = locate(doc, at);
    return offset === undefined ? undefined : lineCounter.linePos(offset).line;
  };
  const origin = failAt(
    (at) => {
      const line = lineOf(at);
      return line === undefined ? ` (in ${file})` : ` (at ${file} line ${line})`;
    },
    (at) => ({ file, line: lineOf(at) }),
  );
  return readSection(doc.toJS({ maxAliasCount: 100 }) as unknown, root, [], origin);
}

/** Offset of the deepest node along `at` that exists in the document (a mapping key where possible). */
function locate(doc: Document, at: PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  for (const segment of at) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as { range?: [number, number, number] } | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

// ---------------------------------------------------------------------------------------------
// Environment variables: HEARTH_<KEY>__<KEY>..., segments in UPPER_SNAKE

const NULL_WORDS = new Set(["off", "null", "none", ""]);
const TRUE_WORDS = new Set(["true", "yes", "on", "1"]);
const FALSE_WORDS = new Set(["false", "no", "off", "0"]);

function parseEnvValue(leaf: Leaf, text: string): Checked {
  const trimmed = text.trim();
  const lower = trimmed.toLowerCase();
  let raw: unknown;
  switch (leaf.kind) {
    case "string":
      raw = leaf.nullable && NULL_WORDS.has(lower) ? null : text;
      break;
    case "integer":
      raw = leaf.nullable && NULL_WORDS.has(lower) ? null : /^[+-]?[0-9]+$/.test(trimmed) ? Number(trimmed) : text;
      break;
    case "number":
      raw = leaf.nullable && NULL_WORDS.has(lower) ? null : /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$/.test(trimmed) ? Number(trimmed) : text;
      break;
    case "boolean":
      raw = TRUE_WORDS.has(lower) ? true : FALSE_WORDS.has(lower) ? false : text;
      break;
    case "enum":
      raw = trimmed;
      break;
    case "list":
      raw = trimmed === "" ? [] : trimmed.split(",").map((item) => item.trim()).filter((item) => item !== "");
      break;
    case "certMap":
    case "map":
      try {
        raw = trimmed === "" ? null : (parseYaml(text) as unknown);
      } catch {
        return { ok: false, problem: `must be ${expectation(leaf, "env")}, got ${leaf.kind === "map" && leaf.secret ? "text that is no YAML (not shown: it holds secrets)" : describeValue(text)}` };
      }
      break;
  }
  return checkLeaf(leaf, raw, "env");
}

function parseModuleOption(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch {
    return text;
  }
}

interface EnvIndex { leaves: Map<string, { path: string[]; leaf: Leaf }>; sections: Map<string, string[]> }

const envIndexes = new WeakMap<Section, EnvIndex>();

function envIndex(root: Section): EnvIndex {
  let index = envIndexes.get(root);
  if (index === undefined) {
    index = { leaves: new Map(), sections: new Map() };
    for (const entry of leaves(root)) {
      index.leaves.set(envName(entry.path), entry);
      for (let i = 1; i < entry.path.length; i++) index.sections.set(envName(entry.path.slice(0, i)), entry.path.slice(0, i));
    }
    envIndexes.set(root, index);
  }
  return index;
}

const MODULES_PREFIX = `${ENV_PREFIX}MODULES__`;

function readEnvLayer(env: NodeJS.ProcessEnv, root: Section): Tree {
  const index = envIndex(root);
  const freeFormModules = (root.fields.modules as Section).openEntries !== undefined;
  const out: Tree = {};
  for (const name of Object.keys(env).sort()) {
    const text = env[name];
    // HEARTH_TEST_* belong to the test harness (HEARTH_TEST_STORE picks the store driver of the test suites).
    if (!name.startsWith(ENV_PREFIX) || name === "HEARTH_CONFIG" || name.startsWith("HEARTH_TEST_") || text === undefined) continue;
    const entry = index.leaves.get(name);
    if (entry !== undefined) {
      const checked = parseEnvValue(entry.leaf, text);
      if (!checked.ok) {
        throw new ConfigError(name, `${name} (${formatKeyPath([...entry.path, ...(checked.at ?? [])])}): ${checked.problem}`);
      }
      setIn(out, entry.path, checked.value);
      continue;
    }
    if (freeFormModules && name.startsWith(MODULES_PREFIX)) {
      const segments = name.slice(MODULES_PREFIX.length).split("__");
      if (segments.every((s) => /^[A-Z0-9]+(?:_[A-Z0-9]+)*$/.test(s))) {
        const modulePath = ["modules", ...segments.map(keyFromEnvSegment)];
        const value = parseModuleOption(text);
        if (segments.length === 1 && value !== null && !isPlainObject(value)) {
          throw new ConfigError(
            name,
            `${name}: must be a YAML or JSON mapping of module options (or set one option with ${name}__<OPTION>), got ${describeValue(text)}`,
          );
        }
        setIn(out, modulePath, value === null && segments.length === 1 ? {} : value);
        continue;
      }
    }
    const section = index.sections.get(name);
    if (section !== undefined) {
      throw new ConfigError(
        name,
        `${name}: ${formatKeyPath(section)} is a section; set its keys instead, e.g. ${firstLeafVariable(root, section)}`,
      );
    }
    throw new ConfigError(name, `${name}: unknown variable${suggestVariable(name, [...index.leaves.keys()])}`);
  }
  return out;
}

function firstLeafVariable(root: Section, section: string[]): string {
  const first = leaves(root).find((entry) => section.every((key, i) => entry.path[i] === key));
  return first === undefined ? "" : envName(first.path);
}

function suggestVariable(name: string, known: string[]): string {
  const close = known.find((k) => editDistance(k, name) <= 2 || k.replace(/_/g, "") === name.replace(/_/g, ""));
  return close === undefined ? " (see hearth.example.yaml for the settings)" : ` (did you mean ${close}?)`;
}

function setIn(tree: Tree, at: string[], value: unknown): void {
  let node = tree;
  for (const key of at.slice(0, -1)) {
    const next = node[key];
    if (isPlainObject(next)) node = next;
    else node = node[key] = {};
  }
  node[at[at.length - 1]!] = value;
}

// ---------------------------------------------------------------------------------------------
// Merging, cross-key checks and derived values

/** Mappings merge key by key; everything else (lists included) is replaced. */
function deepMerge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

const WILDCARD_BINDS = new Set(["0.0.0.0", "::", "::0"]);

function checkCombinations(config: Config): void {
  if (config.storage.driver === "postgres" && config.storage.postgres.url === null) {
    throw new ConfigError("storage.postgres.url", "storage.postgres.url: must be set when storage.driver is postgres");
  }
  if ((config.tls.cert === null) !== (config.tls.key === null)) {
    const missing = config.tls.cert === null ? "tls.cert" : "tls.key";
    const other = missing === "tls.cert" ? "tls.key" : "tls.cert";
    throw new ConfigError(missing, `${missing}: must be set together with ${other}`);
  }
  for (const name of Object.keys(config.api.scopes)) {
    if (config.api.keys[name] === undefined) throw new ConfigError(`api.scopes.${name}`, `api.scopes.${name}: no key of that name in api.keys`);
  }
  for (const admin of config.admin.accounts) {
    const host = admin.slice(admin.indexOf("@") + 1);
    if (!config.hosts.includes(host)) throw new ConfigError("admin.accounts", `admin.accounts: ${admin} is not on a served host (${config.hosts.join(", ")})`);
  }
  for (const domain of Object.keys(config.components.secrets)) {
    if (config.hosts.includes(domain)) throw new ConfigError(`components.secrets.${domain}`, `components.secrets.${domain}: ${domain} is a served host, not a component domain`);
  }
  if (config.cluster.deadAfterSeconds <= config.cluster.heartbeatSeconds) {
    throw new ConfigError("cluster.deadAfterSeconds", "cluster.deadAfterSeconds: must be greater than cluster.heartbeatSeconds");
  }
  const listeners: Array<{ key: string; bind: string; port: number | null }> = [
    { key: "c2s.port", bind: config.c2s.bind, port: config.c2s.port },
    { key: "c2s.directTlsPort", bind: config.c2s.bind, port: config.c2s.directTlsPort },
    { key: "http.port", bind: config.http.bind, port: config.http.port },
    { key: "s2s.port", bind: config.s2s.bind, port: config.s2s.port },
    { key: "s2s.directTlsPort", bind: config.s2s.bind, port: config.s2s.directTlsPort },
    { key: "components.port", bind: config.components.bind, port: config.components.port },
  ];
  for (const [i, a] of listeners.entries()) {
    for (const b of listeners.slice(i + 1)) {
      if (a.port === null || a.port === 0 || a.port !== b.port) continue;
      if (a.bind === b.bind || WILDCARD_BINDS.has(a.bind) || WILDCARD_BINDS.has(b.bind)) {
        throw new ConfigError(b.key, `${b.key}: port ${b.port} is already used by ${a.key}`);
      }
    }
  }
}

/** Runs a module's cross-key rule on its (key by key valid) options. */
function checkOptions(section: OptionsSection, options: unknown, at: string[]): void {
  const broken = section.check?.(options);
  if (broken === undefined) return;
  const key = formatKeyPath([...at, broken.key]);
  throw new ConfigError(key, `${key}: ${broken.problem}`);
}

function finish(tree: Tree, cwd: string, root: Section): Config {
  const config = structuredClone(tree) as unknown as Config & { storage: { sqlite: { path: string | null } } };
  checkCombinations(config);
  for (const [name, node] of Object.entries((root.fields.modules as Section).fields)) {
    if (node.kind === "section") checkOptions(node, config.modules[name], ["modules", name]);
  }
  const resolve = (p: string) => path.resolve(cwd, p);
  config.dataDir = resolve(config.dataDir);
  const sqlitePath = config.storage.sqlite.path;
  config.storage.sqlite.path =
    sqlitePath === null ? path.join(config.dataDir, "hearth.db") : sqlitePath === ":memory:" ? sqlitePath : resolve(sqlitePath);
  if (config.tls.cert !== null) config.tls.cert = resolve(config.tls.cert);
  if (config.tls.key !== null) config.tls.key = resolve(config.tls.key);
  if (config.s2s.caFile !== null) config.s2s.caFile = resolve(config.s2s.caFile);
  for (const entry of Object.values(config.tls.certs)) {
    entry.cert = resolve(entry.cert);
    entry.key = resolve(entry.key);
  }
  return config;
}

export interface LoadConfigOptions {
  /** YAML file; undefined means $HEARTH_CONFIG if set, null means no file. Relative to `cwd`. */
  file?: string | null;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  overrides?: DeepPartial<Config>;
  /** Relative paths resolve against this; defaults to process.cwd(). */
  cwd?: string;
  /**
   * The modules the server will load: `modules.<name>` is then checked against each one's declared
   * options (with file lines in errors, and typed HEARTH_MODULES__<NAME>__<OPTION> variables), and an
   * unknown module name is an error. Without it module options are free-form mappings until the module
   * loader checks them.
   */
  modules?: readonly ModuleOptionsDecl[];
}

/** Defaults ← file ← environment ← overrides; throws ConfigError on the first problem. */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const file = opts.file === undefined ? env.HEARTH_CONFIG || null : opts.file;
  const root = rootSchema(opts.modules);
  let tree = schemaDefaults(root);
  if (file !== null && file !== "") tree = deepMerge(tree, readFileLayer(path.resolve(cwd, file), root));
  tree = deepMerge(tree, readEnvLayer(env, root));
  if (opts.overrides !== undefined) {
    tree = deepMerge(tree, readSection(opts.overrides, root, [], failAt(() => " (in overrides)")));
  }
  return finish(tree, cwd, root);
}

/**
 * `modules.<name>` of a loaded config checked against the module's declared options: unknown keys and
 * wrong types are errors naming `modules.<name>.<key>`, missing keys get their defaults, then the
 * module's cross-key rule runs. Idempotent, so options loadConfig checked already pass unchanged.
 */
export function readModuleOptions<O>(module: { name: string; options?: OptionsSection<O> }, raw: unknown): O {
  const section = optionsSectionOf(module);
  const at = ["modules", module.name];
  const options = deepMerge(schemaDefaults(section), readSection(raw, section, at, failAt(() => "")));
  checkOptions(section, options, at);
  return options as O;
}

// ---------------------------------------------------------------------------------------------
// Documentation

function formatDefault(leaf: Leaf): string {
  if (leaf.defaultNote !== undefined) return leaf.defaultNote;
  const value: unknown = leaf.default;
  if (Array.isArray(value)) return `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
  return JSON.stringify(value);
}

export interface ConfigKeyDoc {
  key: string;
  default: string;
  description: string;
  /** The environment variable that overrides it. */
  env: string;
}

/** Every key for the README; with `modules`, every module option too. */
export function describeConfig(modules?: readonly ModuleOptionsDecl[]): ConfigKeyDoc[] {
  const root = rootSchema(modules);
  const rows: ConfigKeyDoc[] = leaves(root).map(({ path: at, leaf }) => ({
    key: at.join("."),
    default: formatDefault(leaf),
    description: leaf.description,
    env: envName(at),
  }));
  const modulesSection = root.fields.modules as Section;
  if (modulesSection.openEntries === undefined) return rows;
  rows.push({
    key: "modules.<name>",
    default: "{}",
    description: modulesSection.openEntries.description,
    env: `${MODULES_PREFIX}<NAME>__<OPTION>`,
  });
  return rows;
}

function wrapComment(text: string, indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "";
  // Keep references such as "RFC 6120" on one line.
  const words = text.replace(/\b(RFC) (\d)/g, "$1\u0000$2").split(/\s+/).map((w) => w.replace("\u0000", " "));
  for (const word of words) {
    if (line !== "" && indent.length + 2 + line.length + 1 + word.length > width) {
      lines.push(`${indent}# ${line}`);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(`${indent}# ${line}`);
  return lines;
}

function yamlScalar(value: unknown): string {
  return new Document(value).toString().trim();
}

function renderLeaf(key: string, leaf: Leaf, indent: string, at: string[]): string[] {
  const out = wrapComment(leaf.description, indent);
  const extra = leaf.kind === "enum" ? `One of: ${leaf.values.join(", ")}. ` : "";
  out.push(...wrapComment(`${extra}Environment: ${envName(at)}`, indent));
  const value: unknown = leaf.default;
  if (Array.isArray(value) && value.length > 0) {
    out.push(`${indent}${key}:`);
    for (const item of value) out.push(`${indent}  - ${yamlScalar(item)}`);
  } else if (leaf.kind === "certMap" || leaf.kind === "map") {
    out.push(`${indent}${key}: {}`);
    out.push(`${indent}# ${key}:`);
    for (const line of leaf.example) out.push(`${indent}#   ${line}`);
  } else {
    out.push(`${indent}${key}: ${Array.isArray(value) ? "[]" : yamlScalar(value)}`);
  }
  return out;
}

function renderSection(section: Section, indent: string, at: string[]): string[] {
  const out: string[] = [];
  for (const [key, node] of Object.entries(section.fields)) {
    if (node.kind === "section" && Object.keys(node.fields).length === 0) continue;
    if (indent === "") out.push("");
    if (node.kind === "section") {
      out.push(...wrapComment(node.description, indent));
      out.push(`${indent}${key}:`);
      out.push(...renderSection(node, `${indent}  `, [...at, key]));
    } else {
      out.push(...renderLeaf(key, node, indent, [...at, key]));
    }
  }
  if (section.openEntries !== undefined) {
    out.push(...wrapComment(section.openEntries.description, indent));
    for (const line of section.openEntries.example) out.push(`${indent}# ${line}`);
  }
  return out;
}

/** The default configuration as a commented YAML file (hearth.example.yaml); with `modules`, their options too. */
export function renderDefaultYaml(modules?: readonly ModuleOptionsDecl[]): string {
  const header = [
    "# hearth configuration, with every setting at its default value.",
    "# Every setting can be overridden by an environment variable named after its path, e.g.",
    "# HEARTH_C2S__PORT=5322, HEARTH_HOSTS=a.example,b.example, HEARTH_C2S__PORT=off (null).",
    "# HEARTH_CONFIG names this file. Relative paths are resolved against the working directory.",
  ];
  return [...header, ...renderSection(rootSchema(modules), "", [])].join("\n") + "\n";
}

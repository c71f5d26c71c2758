// Several hearth processes behind one domain for `--nodes N` (and a single one on PostgreSQL for
// `--store postgres`): a private PostgreSQL (durable settings, as in production) shared by every node, a
// private Redis for the cluster, and N spawned servers. Clients are spread over the nodes by user number
// (BenchContext.targetFor), so the two partners of a chat pair sit on different nodes.
import { startPostgres, type PrivatePostgres } from '../helpers/postgres.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { hearthServer, type ChildServer } from './server-process.js';

export interface NodeOptions {
  nodes: number;
  store: 'sqlite' | 'postgres';
  /** run the nodes as a cluster on Redis (always with more than one node) */
  redis: boolean;
}

export interface HearthNodes {
  children: ChildServer[];
  description: string;
  /** the private Redis of a cluster, or null */
  redisUrl: string | null;
  /** stops PostgreSQL and Redis (after the children) */
  stopServices(): Promise<void>;
}

export function nodeOptions(flags: Map<string, string>, bools: Set<string>): NodeOptions {
  const nodes = Number(flags.get('nodes') ?? '1');
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new Error(`--nodes must be 1-16, got ${flags.get('nodes')}`);
  const store = flags.get('store') ?? (nodes > 1 ? 'postgres' : 'sqlite');
  if (store !== 'sqlite' && store !== 'postgres') throw new Error(`--store must be sqlite or postgres, got ${store}`);
  if (nodes > 1 && store === 'sqlite') throw new Error('--nodes > 1 needs --store postgres (nodes share one database)');
  return { nodes, store, redis: nodes > 1 || bools.has('redis') };
}

export async function hearthNodes(repoRoot: string, domain: string, keep: boolean, logLevel: string, o: NodeOptions): Promise<HearthNodes> {
  let pg: PrivatePostgres | null = null;
  let redis: PrivateRedis | null = null;
  const stopServices = async () => {
    await redis?.stop();
    await pg?.stop();
  };
  try {
    const extra: string[] = [];
    if (o.store === 'postgres') {
      process.stderr.write('[bench] starting a private PostgreSQL (durable settings)\n');
      pg = await startPostgres({ durable: true });
      extra.push(`storage: { driver: postgres, postgres: { url: ${JSON.stringify(pg.url)} } }`);
    }
    if (o.redis) {
      redis = await startRedis();
      process.stderr.write(`[bench] private Redis on ${redis.url}\n`);
    }
    const children: ChildServer[] = [];
    for (let i = 1; i <= o.nodes; i++) {
      const cluster = redis ? [`cluster: { redisUrl: ${JSON.stringify(redis.url)}, nodeId: bench${i} }`] : [];
      children.push(await hearthServer(repoRoot, domain, keep, logLevel, [...extra, ...cluster], o.nodes > 1 ? `hearth-${i}` : 'hearth'));
    }
    const what = `${o.nodes} node${o.nodes > 1 ? 's' : ''}, ${o.store}${o.redis ? ' + Redis cluster' : ''}`;
    return { children, description: what, stopServices, redisUrl: redis?.url ?? null };
  } catch (e) {
    await stopServices();
    throw e;
  }
}

// What every PostgreSQL contract file shares: the pool, named statements, and transactions that retry when
// PostgreSQL reports a conflict with a concurrent writer.
import pg from "pg";

// int8 columns (seq, ts, counts) as numbers: every value we store is far below 2^53.
const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

export function createPool(url: string, poolSize: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types, application_name: "hearth" } as pg.PoolConfig);
  // An idle connection that fails (server restart, network) is dropped by the pool; the next query opens a
  // new one. Without a listener the 'error' event would end the process.
  pool.on("error", () => {});
  return pool;
}

/** A named statement: prepared once per pooled connection, then only bound and executed. */
export const statement = (name: string, text: string) => (values: unknown[]): pg.QueryConfig => ({ name: `hearth-${name}`, text, values });

// SQLSTATEs a transaction is retried for: deadlocks, serialization failures, and unique violations (an
// insert that raced a concurrent insert of the same key: the retry finds the row).
export const UNIQUE_VIOLATION = "23505", DEADLOCK = "40P01", SERIALIZATION = "40001";
export const MAX_ATTEMPTS = 5;

/**
 * Runs `work` in a transaction on one pooled connection and commits it; retries it from the start (a new
 * transaction) when it fails with a conflict named above.
 */
export async function transaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const value = await work(client);
      await client.query("COMMIT");
      return value;
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackFailed: Error) => { broken = rollbackFailed; });
      const code = (err as { code?: string }).code;
      if (attempt >= MAX_ATTEMPTS || (code !== DEADLOCK && code !== SERIALIZATION && code !== UNIQUE_VIOLATION)) throw err;
    } finally {
      // A connection that could not even roll back is closed rather than handed to the next caller.
      client.release(broken);
    }
  }
}

// The operations endpoints on the HTTP port: /metrics (Prometheus text, from ops.networks only) and the
// health checks /health/live and /health/ready (for everyone: they say nothing but up or down).
import type { IncomingMessage, ServerResponse } from "node:http";
import { NetworkList } from "../auth/networks.js";
import type { Logger } from "../log.js";
import { createMetrics, type MetricsDeps } from "./metrics.js";
import { readiness, type HealthDeps } from "./health.js";

export interface OpsDeps extends MetricsDeps {
  health: HealthDeps;
  log: Logger;
}

export interface Ops {
  /** Answers the request when it is one of the operations endpoints; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  close(): void;
}

export function startOps(deps: OpsDeps): Ops {
  const cfg = deps.context.config.ops;
  const metrics = cfg.metrics ? createMetrics(deps) : null;
  const allowed = new NetworkList(cfg.networks);
  const log = deps.log.child({ component: "ops" });

  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, "application/json", JSON.stringify(value) + "\n");

  return {
    handle(req, res) {
      const url = (req.url ?? "/").split("?")[0];
      if (url === "/health/live") {
        json(res, 200, { status: "ok" });
        return true;
      }
      if (url === "/health/ready") {
        readiness(deps.health).then(
          (r) => json(res, r.ready ? 200 : 503, { status: r.ready ? "ok" : "unavailable", checks: r.checks }),
          (err) => { log.error({ err }, "readiness check failed"); json(res, 503, { status: "unavailable" }); },
        );
        return true;
      }
      if (url === "/metrics" && metrics !== null) {
        if (!allowed.has(req.socket.remoteAddress ?? "")) {
          send(res, 403, "text/plain", "Forbidden: this address is not in ops.networks\n");
          return true;
        }
        metrics.render().then(
          (text) => send(res, 200, metrics.contentType, text),
          (err) => { log.error({ err }, "collecting metrics failed"); send(res, 500, "text/plain", "collecting metrics failed\n"); },
        );
        return true;
      }
      return false;
    },
    close() {
      metrics?.close();
    },
  };
}

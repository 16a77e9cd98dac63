/**
 * Control-socket route for the daemon's block tally (blocks by rule and by
 * cgroup, counted from the block records it reads: metrics/block_tally.ts),
 * mounted at "/stats":
 *   GET /stats/blocks → BlockTallySnapshot
 * The per-hook counters and drops come from GET /metrics?detailed=1
 * (metrics/stats.ts). docs/operations.md, "Counters".
 *
 * @module
 */
import { Hono } from "hono";
import { routeErrors } from "./route_errors.ts";
import type { BlockTally } from "../metrics/block_tally.ts";

export interface StatsRoutesDeps {
  tally: BlockTally;
  /** a rule id in words (policy line or live rule), null when no such rule exists now */
  ruleName: (id: number) => string | null;
  /** a cgroup id's path, null when unknown */
  cgroupPath: (cgid: string) => string | null;
  onError?: (what: string, e: unknown) => void;
}

/** The "/stats" sub-app. */
export function createStatsRoutes(deps: StatsRoutesDeps): Hono {
  const app = new Hono();
  app.get("/blocks", (c) => c.json(deps.tally.snapshot(deps.ruleName, deps.cgroupPath), 200));
  app.onError(routeErrors(deps.onError));
  return app;
}

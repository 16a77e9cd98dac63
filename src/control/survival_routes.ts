/**
 * Control-socket routes for the survival allowlist (read-only; root-only
 * like every control route), mounted at "/survival":
 *   GET /survival         → {capacity, entries: SurvivalListed[]}
 *   GET /survival/verify  → SurvivalCheck
 * Thin: the work is in bpf/survival.ts, which the CLI calls on the pins
 * when no daemon runs (docs/operations.md, "The survival allowlist").
 *
 * @module
 */
import { Hono } from "hono";
import { routeErrors } from "./route_errors.ts";
import {
  checkSurvival,
  listSurvival,
  runningSurvivors,
  type SurvivalMap,
  type Survivor,
} from "../bpf/survival.ts";

export interface SurvivalRoutesDeps {
  /** aegis_survival_inode of the running engine */
  map: () => SurvivalMap;
  /** the survivors running now (default: read /proc) */
  survivors?: () => Survivor[];
  onError?: (what: string, e: unknown) => void;
}

/** The "/survival" sub-app. */
export function createSurvivalRoutes(deps: SurvivalRoutesDeps): Hono {
  const app = new Hono();
  const survivors = () => (deps.survivors ?? runningSurvivors)();
  app.get("/", (c) => {
    const map = deps.map();
    return c.json({ capacity: map.maxEntries, entries: listSurvival(map, survivors()) }, 200);
  });
  app.get("/verify", (c) => c.json(checkSurvival(deps.map(), survivors()), 200));
  app.onError(routeErrors(deps.onError));
  return app;
}

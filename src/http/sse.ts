/**
 * Server-sent events for `GET /events`: one hub, many subscribers, each with
 * a bounded queue. The agent never waits for a subscriber.
 *
 * - publish() serialises an event once (`data: <json>\n\n`, UTF-8) and hands
 *   the same bytes to every subscriber: O(subscribers), no await, no I/O.
 * - A subscriber whose stream is waiting for data gets the frame at once;
 *   otherwise it is queued. A queue over its event or byte bound, or a queue
 *   that has not moved for `maxStallMs`, disconnects that subscriber (its
 *   response stream errors, so the HTTP server closes the connection) and
 *   the reason is counted. Nothing else is ever dropped: a subscriber either
 *   sees every event since it connected, in order, or is disconnected.
 * - When the consumer reads, everything queued goes out as one chunk.
 * - A comment line (`:\n\n`) every `keepAliveMs` keeps idle connections
 *   (and proxies) alive; the timer runs only while there are subscribers.
 * - The number of subscribers is bounded; beyond it subscribe() refuses
 *   with `SSE_CLIENT_LIMIT` (the app answers 503).
 * - Quotas per caller uid (docs/http.md "SSE quotas"): a non-root uid holds
 *   at most `maxClientsPerUid` subscribers, and `rootReserved` of the
 *   `maxClients` slots are kept for uid 0, so one local user cannot lock
 *   root out. A caller whose uid is unknown counts as one non-root uid
 *   ("unknown"). The caller is passed to subscribe(); for `GET /events`
 *   the server puts it in the request's env (`subscriber`: src/http/serve.ts
 *   learns the uid of a loopback TCP client from the kernel's socket table).
 *
 * SseHub is also an {@link EventBus}: `emit(event)` is `publish(event)`.
 *
 * @module
 */
import type { AegisEvent, EventBus } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { literal, log } from "../log.ts";
import { concatBytes } from "../util/bytes.ts";
import { exactJson } from "../util/exact_json.ts";

export interface SseHubOptions {
  /** concurrent subscribers; more are refused (default 64) */
  maxClients?: number;
  /** concurrent subscribers of one non-root uid (default min(8, maxClients)) */
  maxClientsPerUid?: number;
  /** slots only uid 0 may take (default min(8, floor(maxClients / 8))) */
  rootReserved?: number;
  /** events queued for one subscriber before it is cut off (default 1024) */
  maxQueueEvents?: number;
  /** bytes queued for one subscriber before it is cut off (default 4 MiB) */
  maxQueueBytes?: number;
  /** a subscriber whose queue has not drained for this long is cut off (default 60 s) */
  maxStallMs?: number;
  /** interval of the keep-alive comment (default 15 s) */
  keepAliveMs?: number;
  /** clock, for tests (default performance.now) */
  now?: () => number;
}

/** Why a subscriber went away. */
export type SseDisconnectReason =
  /** its queue went over maxQueueEvents or maxQueueBytes */
  | "slow"
  /** its queue did not move for maxStallMs */
  | "stalled"
  /** the client closed the connection */
  | "closed"
  /** the hub was closed (daemon shutdown) */
  | "shutdown";

/** Counters of the hub since it was created (for /metrics and /state). */
export interface SseStats {
  /** subscribers connected now */
  clients: number;
  max_clients: number;
  /** subscribers accepted since start */
  connected_total: number;
  max_clients_per_uid: number;
  root_reserved: number;
  /** subscribe() calls refused: max_clients connected, a uid over its quota, or the root reserve */
  rejected_clients: number;
  /** of rejected_clients: refused because the caller's uid held max_clients_per_uid */
  rejected_uid_quota: number;
  /** events given to publish() */
  published: number;
  /** event frames handed to subscriber streams (sum over subscribers) */
  delivered: number;
  /** bytes handed to subscriber streams, keep-alives included */
  delivered_bytes: number;
  /** events that could not be serialised (never sent to anyone) */
  unserializable: number;
  /** subscribers cut off by the hub, by reason */
  dropped_clients: { slow: number; stalled: number };
  /** subscribers that went away otherwise, by reason */
  disconnected_clients: { closed: number; shutdown: number };
}

/** The error a cut-off subscriber's stream ends with (the server closes the connection). */
export class SseClientDropped extends AegisError {
  readonly reason: SseDisconnectReason;
  constructor(reason: SseDisconnectReason, detail: string) {
    super("SSE_CLIENT_DROPPED", `SSE subscriber disconnected (${reason}): ${detail}`);
    this.reason = reason;
  }
}

const enc = new TextEncoder();
const KEEPALIVE = enc.encode(":\n\n");
const HELLO = enc.encode(": aegisbpf events\nretry: 2000\n\n");

/** Who asks for a subscription: the uid, or null when it cannot be determined. */
export interface SubscriberId {
  uid: number | null;
}

interface Client {
  id: number;
  /** the quota bucket: "0", "1000", or "unknown" */
  owner: string;
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** frames waiting for the consumer */
  chunks: Uint8Array[];
  /** events in chunks (keep-alives not counted) */
  events: number;
  bytes: number;
  /** when chunks last went from empty to non-empty, or were last drained */
  since: number;
  /** the consumer asked for data and chunks was empty: enqueue directly */
  waiting: boolean;
  closed: boolean;
}

/** The /events fan-out. See the module documentation for the policy. */
export class SseHub implements EventBus {
  readonly #maxClients: number;
  readonly #maxPerUid: number;
  readonly #rootReserved: number;
  readonly #perOwner = new Map<string, number>();
  readonly #maxQueueEvents: number;
  readonly #maxQueueBytes: number;
  readonly #maxStallMs: number;
  readonly #keepAliveMs: number;
  readonly #now: () => number;
  readonly #clients = new Set<Client>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #nextId = 1;
  #closed = false;
  #connectedTotal = 0;
  #rejected = 0;
  #rejectedQuota = 0;
  #published = 0;
  #delivered = 0;
  #deliveredBytes = 0;
  #unserializable = 0;
  #dropped = { slow: 0, stalled: 0 };
  #disconnected = { closed: 0, shutdown: 0 };

  constructor(opts: SseHubOptions = {}) {
    this.#maxClients = positive("maxClients", opts.maxClients ?? 64);
    this.#maxPerUid = positive(
      "maxClientsPerUid",
      opts.maxClientsPerUid ?? Math.min(8, this.#maxClients),
    );
    this.#rootReserved = opts.rootReserved ??
      Math.min(8, Math.floor(this.#maxClients / 8));
    if (
      !Number.isSafeInteger(this.#rootReserved) || this.#rootReserved < 0 ||
      this.#rootReserved >= this.#maxClients
    ) {
      throw new UsageError(
        `SseHub option rootReserved must be an integer from 0 to maxClients - 1 ` +
          `(${this.#maxClients - 1}), got ${opts.rootReserved}`,
      );
    }
    this.#maxQueueEvents = positive("maxQueueEvents", opts.maxQueueEvents ?? 1024);
    this.#maxQueueBytes = positive("maxQueueBytes", opts.maxQueueBytes ?? 4 << 20);
    this.#maxStallMs = positive("maxStallMs", opts.maxStallMs ?? 60_000);
    this.#keepAliveMs = positive("keepAliveMs", opts.keepAliveMs ?? 15_000);
    this.#now = opts.now ?? (() => performance.now());
  }

  /** EventBus: same as publish(). Never throws, never blocks. */
  emit(event: AegisEvent): void {
    this.publish(event);
  }

  /** No subscriber is connected: an event published now goes nowhere. */
  get unwatched(): boolean {
    return this.#closed || this.#clients.size === 0;
  }

  /**
   * Count an event that was published while {@link unwatched} without
   * building it (the daemon's fast telemetry lines, src/events/telemetry_line.ts).
   */
  publishedUnwatched(): void {
    if (!this.#closed) this.#published++;
  }

  /** Send one event to every subscriber (or queue it for them). Never throws. */
  publish(event: AegisEvent): void {
    if (this.#closed) return;
    this.#published++;
    if (this.#clients.size === 0) return;
    let frame: Uint8Array;
    try {
      frame = enc.encode(`data: ${exactJson(event)}\n\n`);
    } catch {
      this.#unserializable++;
      return;
    }
    const now = this.#now();
    for (const c of this.#clients) this.#offer(c, frame, 1, now);
  }

  /**
   * A new subscriber: the response body for `GET /events`
   * (text/event-stream). Cancelling the stream (the client went away)
   * unsubscribes. `who` is the caller (absent: unknown). Throws AegisError SSE_CLIENT_LIMIT
   * when max_clients are connected, when a non-root caller's uid holds
   * max_clients_per_uid or only the root reserve is left, and SSE_CLOSED
   * after close().
   */
  subscribe(who?: SubscriberId): ReadableStream<Uint8Array> {
    if (this.#closed) {
      throw new AegisError("SSE_CLOSED", "the event stream is shut down (the agent is stopping)");
    }
    const uid = who?.uid ?? null;
    const owner = uid === null ? "unknown" : String(uid);
    const total = this.#clients.size;
    if (total >= this.#maxClients) {
      this.#rejected++;
      throw new AegisError(
        "SSE_CLIENT_LIMIT",
        `too many /events subscribers (${this.#maxClients} connected); try again later`,
      );
    }
    if (uid !== 0) {
      const held = this.#perOwner.get(owner) ?? 0;
      const caller = uid === null ? "a caller whose uid is unknown" : `uid ${uid}`;
      if (held >= this.#maxPerUid) {
        this.#rejected++;
        this.#rejectedQuota++;
        throw new AegisError(
          "SSE_CLIENT_LIMIT",
          `${caller} already holds ${held} /events subscribers (at most ${this.#maxPerUid} ` +
            `per uid); close one or try again later`,
        );
      }
      const rootHeld = this.#perOwner.get("0") ?? 0;
      const free = this.#maxClients - total;
      const reserveLeft = Math.max(0, this.#rootReserved - rootHeld);
      if (free <= reserveLeft) {
        this.#rejected++;
        throw new AegisError(
          "SSE_CLIENT_LIMIT",
          `too many /events subscribers (${total} of ${this.#maxClients} connected, the ` +
            `last ${this.#rootReserved} are kept for root); try again later`,
        );
      }
    }
    let client!: Client;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        client = {
          id: this.#nextId++,
          owner,
          controller,
          chunks: [HELLO],
          events: 0,
          bytes: HELLO.length,
          since: this.#now(),
          waiting: false,
          closed: false,
        };
      },
      pull: () => this.#pull(client),
      cancel: () => this.#remove(client, "closed"),
    }, { highWaterMark: 0 });
    this.#clients.add(client);
    this.#perOwner.set(owner, (this.#perOwner.get(owner) ?? 0) + 1);
    this.#connectedTotal++;
    if (this.#timer === undefined) {
      const timer = setInterval(() => this.#tick(), this.#keepAliveMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    return stream;
  }

  /** Counters since creation. */
  stats(): SseStats {
    return {
      clients: this.#clients.size,
      max_clients: this.#maxClients,
      max_clients_per_uid: this.#maxPerUid,
      root_reserved: this.#rootReserved,
      connected_total: this.#connectedTotal,
      rejected_clients: this.#rejected,
      rejected_uid_quota: this.#rejectedQuota,
      published: this.#published,
      delivered: this.#delivered,
      delivered_bytes: this.#deliveredBytes,
      unserializable: this.#unserializable,
      dropped_clients: { ...this.#dropped },
      disconnected_clients: { ...this.#disconnected },
    };
  }

  /**
   * Disconnect every subscriber and refuse new ones. Call it before the
   * HTTP server's graceful shutdown, which otherwise waits for the streams.
   * Safe to call twice.
   */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#clients]) this.#remove(c, "shutdown");
    this.#stopTimer();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #offer(c: Client, frame: Uint8Array, events: number, now: number): void {
    if (c.waiting) {
      c.waiting = false;
      c.since = now;
      this.#hand(c, frame, events);
      return;
    }
    if (c.events + events > this.#maxQueueEvents || c.bytes + frame.length > this.#maxQueueBytes) {
      this.#remove(c, "slow");
      return;
    }
    if (c.chunks.length === 0) c.since = now;
    c.chunks.push(frame);
    c.events += events;
    c.bytes += frame.length;
  }

  #pull(c: Client): void {
    if (c.closed) return;
    if (c.chunks.length === 0) {
      c.waiting = true;
      return;
    }
    const chunk = c.chunks.length === 1 ? c.chunks[0] : concatBytes(c.chunks, c.bytes);
    const events = c.events;
    c.chunks = [];
    c.events = 0;
    c.bytes = 0;
    c.since = this.#now();
    this.#hand(c, chunk, events);
  }

  #hand(c: Client, chunk: Uint8Array, events: number): void {
    c.controller.enqueue(chunk);
    this.#delivered += events;
    this.#deliveredBytes += chunk.length;
  }

  #tick(): void {
    const now = this.#now();
    for (const c of [...this.#clients]) {
      if (c.chunks.length === 0) {
        this.#offer(c, KEEPALIVE, 0, now);
      } else if (now - c.since >= this.#maxStallMs) {
        this.#remove(c, "stalled");
      }
    }
  }

  #remove(c: Client, reason: SseDisconnectReason): void {
    if (c.closed) return;
    c.closed = true;
    this.#clients.delete(c);
    const held = (this.#perOwner.get(c.owner) ?? 1) - 1;
    if (held > 0) this.#perOwner.set(c.owner, held);
    else this.#perOwner.delete(c.owner);
    const queued = c.events;
    c.chunks = [];
    c.events = 0;
    c.bytes = 0;
    if (this.#clients.size === 0) this.#stopTimer();
    if (reason === "closed") {
      this.#disconnected.closed++;
      return; // the stream was cancelled by its reader
    }
    if (reason === "shutdown") {
      this.#disconnected.shutdown++;
      if (c.waiting) {
        c.controller.close(); // nothing in flight: a clean end of stream
        return;
      }
    } else {
      this.#dropped[reason]++;
      log("http").warn(
        literal(
          `/events subscriber ${c.id} disconnected (${reason}): ${queued} events queued, ` +
            `limits ${this.#maxQueueEvents} events / ${this.#maxQueueBytes} bytes / ` +
            `${this.#maxStallMs} ms without progress`,
        ),
        { subscriber: c.id, reason, queued },
      );
    }
    // data may be in flight to a client that does not read: error the
    // stream so the server drops the connection instead of waiting on it
    c.controller.error(new SseClientDropped(reason, `subscriber ${c.id}`));
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new UsageError(`SseHub option ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

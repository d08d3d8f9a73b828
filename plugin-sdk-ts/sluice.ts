// Write Sluice plugins in TypeScript: the helpers of the Rust SDK (sluice-plugin-sdk) over the
// same WIT world (`wit/sluice.wit`), built into a component with jco/componentize-js.
//
//   import { plugin, manifest, Collection, Router } from './sluice.js';
//   class Counter { manifest() { return manifest().indexing(['*']).withRoutes(); } … }
//   export const { init, decode, onEvent, index, handle } = plugin(() => new Counter());

import * as storage from 'sluice:plugin/storage@0.3.0';
import * as host from 'sluice:plugin/host@0.3.0';
import * as casper from 'sluice:plugin/casper@0.3.0';
import type { DerivedEvent, Event, Manifest, Request, Response, Verdict } from 'sluice:plugin/types@0.3.0';

export type { DerivedEvent, Event, Manifest, Request, Response, Verdict };

// The engine's (StarlingMonkey's) encoder; declared here rather than taking the DOM's types.
declare const TextEncoder: { new (): { encode(text: string): Uint8Array } };

/** What a plugin implements: the methods its manifest announces (the others are never called). */
export interface Plugin {
  /** What it does, built from `manifest()`. */
  manifest(): Manifest;
  /** Decoders: events derived from one a source delivered. */
  decode?(event: Event): DerivedEvent[];
  /** Filters: what happens to one event. */
  onEvent?(event: Event): Verdict;
  /** Indexers: new events, in batches; a throw rolls back the batch's writes. */
  index?(events: Event[]): void;
  /** Routes: a request under `/plugins/{name}/` (storage is read-only here). */
  handle?(request: Request): Response;
}

/** The world's exports for the plugin `create` makes from its `[plugins.config]` table:
 * `export const { init, decode, onEvent, index, handle } = plugin((config) => new MyPlugin(config));` */
export function plugin<Config>(create: (config: Config) => Plugin) {
  let instance: Plugin | undefined;
  const live = (): Plugin => {
    if (instance === undefined) throw new Error('the host calls init first');
    return instance;
  };
  return {
    init(config: string): Manifest {
      instance = create(JSON.parse(config) as Config);
      return instance.manifest();
    },
    decode: (event: Event): DerivedEvent[] => live().decode?.(event) ?? [],
    onEvent: (event: Event): Verdict => live().onEvent?.(event) ?? { tag: 'keep' },
    index: (events: Event[]): void => live().index?.(events),
    handle: (request: Request): Response => live().handle?.(request) ?? error(404, 'not_found', 'no such route'),
  };
}

/** A manifest that does nothing yet; each method adds one thing. */
export function manifest(): ManifestBuilder {
  return new ManifestBuilder();
}

/** The manifest, built step by step (see the Rust SDK's `Manifest`). */
export class ManifestBuilder implements Manifest {
  decode = false;
  filter = false;
  indexKinds: string[] = [];
  routes = false;
  indexes: { collection: string; field: string }[] = [];
  servedCollections: string[] = [];
  /** `decode` is called for every event a source delivers. */
  decoding(): this { this.decode = true; return this; }
  /** `onEvent` is called for every event. */
  filtering(): this { this.filter = true; return this; }
  /** `index` receives events of these types (`*`: all) in batches. */
  indexing(kinds: string[]): this { this.indexKinds.push(...kinds); return this; }
  /** `handle` answers HTTP requests under `/plugins/{name}/`. */
  withRoutes(): this { this.routes = true; return this; }
  /** An index of `collection` by its values' top-level `field`, for `Collection.find`. */
  findBy(collection: string, field: string): this { this.indexes.push({ collection, field }); return this; }
  /** The host serves `collection` read-only (`/collections/…`, live `/changes/…`): it becomes public. */
  serving(collection: string): this { this.servedCollections.push(collection); return this; }
}

/** JSON with big integers as decimal strings (how Casper writes U128, U256, U512). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Most entries one scan returns. */
export const MAX_PAGE = 1000;

/** A collection of the plugin's storage: values of type `T` as JSON, by key, in key order. */
export class Collection<T> {
  constructor(readonly name: string) {}
  /** The value under `key`, if any. */
  get(key: string): T | undefined {
    const value = storage.get(this.name, key);
    return value === undefined ? undefined : (JSON.parse(value) as T);
  }
  /** Store `value` under `key`. */
  set(key: string, value: T): void { storage.set(this.name, key, toJson(value)); }
  /** Change the value under `key` (`initial` when absent), store it and return it. */
  update(key: string, initial: T, change: (value: T) => T): T {
    const value = change(this.get(key) ?? initial);
    this.set(key, value);
    return value;
  }
  /** Remove the value under `key`, if any. */
  remove(key: string): void { storage.remove(this.name, key); }
  /** Entries whose key starts with `prefix`, after `after`, at most `limit`. */
  scan(prefix: string, after?: string, limit = MAX_PAGE): [string, T][] {
    return storage.scan(this.name, prefix, after, limit).map((e) => [e.key, JSON.parse(e.value) as T]);
  }
  /** Entries whose `field` equals `value`, through an index the manifest declared (`findBy`). */
  find(field: string, value: unknown, after?: string, limit = MAX_PAGE): [string, T][] {
    return storage.find(this.name, field, toJson(value), after, limit).map((e) => [e.key, JSON.parse(e.value) as T]);
  }
  /** A page of the entries under `prefix` as the answer to `request`'s `cursor` and `limit`
   * (1 to 1000, default 50): `{"data": [values…], "next_cursor"}`, or a 400. */
  page(request: Request, prefix: string): Response {
    const [cursor, limit] = pageParams(request, 50);
    if (cursor !== undefined && !cursor.startsWith(prefix)) fail(400, 'invalid_cursor', 'not a cursor from next_cursor');
    const entries = storage.scan(this.name, prefix, cursor, limit);
    const last = entries.at(-1)?.key;
    // A scan also stops at a page of bytes: a short page may not be the last.
    const more = last !== undefined && (entries.length === limit || storage.scan(this.name, prefix, last, 1).length > 0);
    const data = entries.map((e) => JSON.parse(e.value));
    return json(200, { data, next_cursor: more ? last : null });
  }
}

/** A response with a JSON body. */
export function json(status: number, body: unknown): Response {
  return { status, headers: [['content-type', 'application/json']], body: new TextEncoder().encode(toJson(body)) };
}

/** An error response: `{"code", "message"}` (the host's own error shape). */
export function error(status: number, code: string, message: string): Response {
  return json(status, { code, message });
}

/** Thrown by `fail`: a route handler's error response. */
export class HttpError extends Error {
  constructor(readonly response: Response) { super(`HTTP ${response.status}`); }
}

/** Stop a route handler with an error response. */
export function fail(status: number, code: string, message: string): never {
  throw new HttpError(error(status, code, message));
}

/** Query parameter `name` of `request`, if present (no percent-decoding beyond `+`, as the
 * Rust SDK). */
export function queryParam(request: Request, name: string): string | undefined {
  for (const pair of request.query.split('&')) {
    const at = pair.indexOf('=');
    if (at >= 0 && pair.slice(0, at) === name) return pair.slice(at + 1).replace(/\+/g, ' ');
  }
  return undefined;
}

/** `cursor` and `limit` (1 to 1000, `defaultLimit` when absent); a 400 when `limit` is not. */
export function pageParams(request: Request, defaultLimit: number): [string | undefined, number] {
  const text = queryParam(request, 'limit');
  const limit = text === undefined ? defaultLimit : /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE)) fail(400, 'invalid_limit', `limit must be 1 to ${MAX_PAGE}`);
  return [queryParam(request, 'cursor'), limit];
}

type Handler = (params: Record<string, string>) => Response | unknown;

/** Routes one request: the first route whose method and pattern (`/balances/{account}`) match
 * answers it; a handler returns a Response or a JSON value (200), or `fail`s. */
export class Router {
  private answer: Response | undefined;
  private allowed: string[] = [];
  constructor(private readonly request: Request) {}
  get(pattern: string, handler: Handler): this { return this.route('GET', pattern, handler); }
  post(pattern: string, handler: Handler): this { return this.route('POST', pattern, handler); }
  route(method: string, pattern: string, handler: Handler): this {
    if (this.answer !== undefined) return this;
    const params = matching(pattern, this.request.path);
    if (params === undefined) return this;
    if (this.request.method.toUpperCase() !== method) {
      this.allowed.push(method);
      return this;
    }
    try {
      const answer = handler(params);
      this.answer = isResponse(answer) ? answer : json(200, answer);
    } catch (thrown) {
      if (!(thrown instanceof HttpError)) throw thrown;
      this.answer = thrown.response;
    }
    return this;
  }
  /** The answer: the matching route's, else 405 when only the method differs, else 404. */
  finish(): Response {
    if (this.answer !== undefined) return this.answer;
    if (this.allowed.length > 0) {
      const response = error(405, 'method_not_allowed', 'this endpoint does not take that method');
      response.headers.push(['allow', this.allowed.join(', ')]);
      return response;
    }
    return error(404, 'not_found', 'no such route');
  }
}

function isResponse(value: unknown): value is Response {
  return typeof value === 'object' && value !== null && 'status' in value && (value as Response).body instanceof Uint8Array;
}

function matching(pattern: string, path: string): Record<string, string> | undefined {
  const wanted = pattern.replace(/^\/+|\/+$/g, '').split('/');
  const given = path.replace(/^\/+|\/+$/g, '').split('/');
  if (wanted.length !== given.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < wanted.length; i++) {
    if (wanted[i].startsWith('{') && wanted[i].endsWith('}') && given[i] !== '') params[wanted[i].slice(1, -1)] = given[i];
    else if (wanted[i] !== given[i]) return undefined;
  }
  return params;
}

/** Log through the host, tagged with the plugin's name. */
export const log = {
  info: (message: string) => host.log('info', message),
  warn: (message: string) => host.log('warn', message),
  debug: (message: string) => host.log('debug', message),
};

/** The account hash (64 hex digits) of a public key or an account hash (bare or
 * `account-hash-…`), by the host's own rule; throws the reason when it is neither. */
export function accountHash(account: string): string {
  return casper.accountHash(account);
}

/** A token holder's formatted key: an account → `account-hash-…`; a contract's `hash-…`. */
export function holderKey(text: string): string {
  return casper.holderKey(text);
}

/** A 256-bit amount from its decimal string (or number); throws when it is not one. */
export function u256(value: unknown): bigint {
  const amount = typeof value === 'number' || (typeof value === 'string' && /^[0-9]+$/.test(value)) ? BigInt(value) : -1n;
  if (amount < 0n || amount >= 1n << 256n) throw new Error(`not a U256: ${JSON.stringify(value)}`);
  return amount;
}

/** `a - b`, or 0 when `b` is larger. */
export function saturatingSub(a: bigint, b: bigint): bigint {
  return a > b ? a - b : 0n;
}

/** A key part that sorts newer sequence numbers first (20 digits). */
export function newestFirst(sequence: bigint): string {
  return (0xffffffffffffffffn - sequence).toString().padStart(20, '0');
}

/** A contract event, from either shape Sluice stores (the CES decoder's, CSPR.cloud's). */
export interface ContractEvent {
  package?: string;
  contract?: string;
  name: string;
  data: Record<string, unknown>;
  /** Its place among its transaction's events. */
  index: number;
  transaction?: string;
  blockHeight?: number;
  timestamp?: string;
}

/** The event as a contract event, if it is one (hashes lowercase). */
export function contractEvent(event: Event): ContractEvent | undefined {
  if (event.kind !== 'ContractEvent') return undefined;
  const raw = JSON.parse(event.json);
  const lower = (hash: unknown) => (typeof hash === 'string' ? hash.toLowerCase() : undefined);
  const decoded = raw.ContractEvent;
  if (decoded !== undefined) {
    return {
      package: lower(decoded.contract_package_hash), contract: lower(decoded.contract_hash), name: decoded.name,
      data: decoded.data ?? {}, index: decoded.transform_id ?? 0, transaction: lower(decoded.transaction_hash),
      blockHeight: decoded.block_height ?? undefined, timestamp: decoded.timestamp ?? undefined,
    };
  }
  if (raw.data?.name === undefined) return undefined;
  return {
    package: lower(raw.data.contract_package_hash), contract: lower(raw.data.contract_hash), name: raw.data.name,
    data: raw.data.data ?? {}, index: raw.extra?.transform_id ?? 0, transaction: lower(raw.extra?.deploy_hash),
    blockHeight: undefined, timestamp: raw.timestamp ?? undefined,
  };
}

/** Which contract a plugin follows: `package_hash` or `contract_hash` in its config. */
export class ContractConfig {
  private readonly packageHash?: string;
  private readonly contractHash?: string;
  constructor(config: { package_hash?: string; contract_hash?: string }) {
    const unknown = Object.keys(config).filter((key) => key !== 'package_hash' && key !== 'contract_hash');
    if (unknown.length > 0) throw new Error(`unknown field ${JSON.stringify(unknown[0])}: expected package_hash or contract_hash`);
    const bare = (hash?: string) => hash?.split('-').at(-1)?.toLowerCase();
    [this.packageHash, this.contractHash] = [bare(config.package_hash), bare(config.contract_hash)];
    if (this.packageHash === undefined && this.contractHash === undefined) {
      throw new Error('set package_hash (or contract_hash): the contract whose events to index');
    }
  }
  /** Whether `event` comes from this contract. */
  matches(event: ContractEvent): boolean {
    const same = (wanted?: string, actual?: string) => wanted === undefined || wanted === actual;
    return same(this.packageHash, event.package) && same(this.contractHash, event.contract);
  }
  /** This contract's events among `events`, with the event each was read from. */
  eventsIn(events: Event[]): [Event, ContractEvent][] {
    const read = events.map((event): [Event, ContractEvent | undefined] => [event, contractEvent(event)]);
    return read.filter((pair): pair is [Event, ContractEvent] => pair[1] !== undefined && this.matches(pair[1]));
  }
}

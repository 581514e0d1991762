/**
 * The manager's table of objects, with their reference counts and published names (CPython:
 * `Server.id_to_obj`, `id_to_refcount`).
 *
 * An object's count is the number of connections holding a proxy to it (each connection counts
 * once: its process counts its own proxies and says when the first appears and the last goes),
 * plus proxies revived inside the server (nested in a stored value), plus its published names.
 * At zero the object is freed. A connection that ends lets go of everything it held.
 *
 * @module
 */
import type { Owner } from "./_manager_sync.ts";

/** One client connection: what it holds (object ids) and what it acquired. */
export interface Session extends Owner {
  readonly refs: Set<number>;
}

/** One shared object. */
export interface Entry {
  type: string;
  impl: object;
  refs: number;
  /** The methods a client may call. */
  methods: ReadonlySet<string>;
  /** What a proxy needs besides the id and type (a custom type's methods, a barrier's parties). */
  extra?: Record<string, unknown>;
  /** Objects this one uses (a condition's lock): held while it lives. */
  holds?: number[];
}

/** What a client is told about an object, to make a proxy for it. */
export interface Described {
  id: number;
  type: string;
  extra?: Record<string, unknown>;
}

/** The objects of one manager. */
export class ObjectTable {
  #objects = new Map<number, Entry>();
  #names = new Map<string, number>();
  #next = 1;

  /** How many objects are alive (for tests and benchmarks). */
  get size(): number {
    return this.#objects.size;
  }

  /** Adds an object held by `session`. */
  add(session: Session, entry: Omit<Entry, "refs">): Described {
    const id = this.#next++;
    for (const h of entry.holds ?? []) this.incref(h);
    this.#objects.set(id, { ...entry, refs: 1 });
    session.refs.add(id);
    return { id, type: entry.type, extra: entry.extra };
  }

  get(id: number): Entry | undefined {
    return this.#objects.get(id);
  }

  incref(id: number): void {
    const e = this.#objects.get(id);
    if (e) e.refs++;
  }

  decref(id: number): void {
    const e = this.#objects.get(id);
    if (!e || --e.refs > 0) return;
    this.#objects.delete(id);
    for (const h of e.holds ?? []) this.decref(h);
  }

  /** `session` holds a proxy to `id` (idempotent). False when there is no such object. */
  hold(session: Session, id: number): boolean {
    if (!this.#objects.has(id)) return false;
    if (!session.refs.has(id)) {
      session.refs.add(id);
      this.incref(id);
    }
    return true;
  }

  /** `session` holds no proxy to `id` any more (idempotent). */
  unhold(session: Session, id: number): void {
    if (session.refs.delete(id)) this.decref(id);
  }

  /** Ends a session: lets go of every object it held. */
  drop(session: Session): void {
    for (const id of session.refs) this.decref(id);
    session.refs.clear();
  }

  /** Publishes `id` under `name` (replacing what had that name). */
  publish(name: string, id: number): void {
    if (!this.#objects.has(id)) {
      throw new ReferenceError(`Cannot publish ${JSON.stringify(name)}: no object ${id}`);
    }
    this.incref(id);
    const old = this.#names.get(name);
    this.#names.set(name, id);
    if (old !== undefined) this.decref(old);
  }

  /** Removes the name `name`; false when no object had it. The object lives on while held. */
  unpublish(name: string): boolean {
    const id = this.#names.get(name);
    if (id === undefined) return false;
    this.#names.delete(name);
    this.decref(id);
    return true;
  }

  /** The object published as `name`, held by `session` from now on; undefined if none. */
  lookup(session: Session, name: string): Described | undefined {
    const id = this.#names.get(name);
    if (id === undefined) return undefined;
    const e = this.#objects.get(id)!;
    this.hold(session, id);
    return { id, type: e.type, extra: e.extra };
  }

  names(): string[] {
    return [...this.#names.keys()];
  }
}

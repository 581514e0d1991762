/**
 * Synchronization objects held by a manager's server: lock, rlock, semaphore, bounded semaphore,
 * condition, event and barrier, for clients anywhere (CPython's manager serves `threading`'s the
 * same way). They live in the server's memory, not in this machine's shared memory, so a client
 * on another machine uses them over its connection.
 *
 * Every method gets the calling connection's {@linkcode Owner} and the request's abort signal
 * last. What a connection holds (a lock, an rlock, semaphore units) is given back when that
 * connection ends: a client that dies holding a lock does not deadlock the others.
 *
 * @module
 */
import { BrokenBarrierError } from "./errors.ts";
import { Changes, native } from "./_manager_objects.ts";

/** Something a connection can hold, given back by `drop()` when the connection ends. */
export interface Holdable {
  drop(owner: Owner): void;
}

/** One client connection, as the owner of what it acquired. */
export interface Owner {
  /** What it holds now. */
  readonly holding: Set<Holdable>;
  /** True once its connection ended. */
  gone: boolean;
}

/** The caller of a method: its connection, and the request's signal (aborted: cancelled or gone). */
export interface CallContext {
  owner: Owner;
  signal: AbortSignal;
}

function notHeld(what: string): Error {
  return native(
    new Error(`Cannot ${what}: the lock is not held by this client (connection); acquire it first`),
  );
}

/** A lock anyone may release (as `threading.Lock`); the holder's connection ending releases it. */
export class LockImpl implements Holdable {
  #owner: Owner | null = null;
  #changes = new Changes();
  #try(o: Owner): boolean {
    if (this.#owner) return false;
    this.#owner = o;
    o.holding.add(this);
    return true;
  }
  acquire(wait: unknown, ctx: CallContext): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#try(ctx.owner), wait, ctx.signal, "acquire()");
  }
  release(_ctx: CallContext): void {
    if (!this.#owner) throw native(new RangeError("Cannot release lock: it is not held"));
    this.#owner.holding.delete(this);
    this.#owner = null;
    this.#changes.changed();
  }
  locked(_ctx?: CallContext): boolean {
    return this.#owner !== null;
  }
  owned(o: Owner): boolean {
    return this.#owner === o;
  }
  /** Releases for a condition's wait; what `restore()` needs to take it back. */
  releaseSave(o: Owner): number {
    this.release({ owner: o, signal: new AbortController().signal });
    return 1;
  }
  restore(o: Owner, _saved: number, signal: AbortSignal): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#try(o), undefined, signal, "acquire()");
  }
  drop(o: Owner): void {
    if (this.#owner === o) this.release({ owner: o, signal: new AbortController().signal });
  }
}

/** A reentrant lock owned by one client connection (as `threading.RLock` by one thread). */
export class RLockImpl implements Holdable {
  #owner: Owner | null = null;
  #count = 0;
  #changes = new Changes();
  #try(o: Owner, count = 1): boolean {
    if (this.#owner === o) {
      this.#count += count;
      return true;
    }
    if (this.#owner) return false;
    this.#owner = o;
    this.#count = count;
    o.holding.add(this);
    return true;
  }
  acquire(wait: unknown, ctx: CallContext): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#try(ctx.owner), wait, ctx.signal, "acquire()");
  }
  release(ctx: CallContext): void {
    if (!this.#owner) throw native(new RangeError("Cannot release RLock: it is not held"));
    if (this.#owner !== ctx.owner) {
      throw native(
        new Error("Cannot release RLock: another client holds it; only the holder may release it"),
      );
    }
    if (--this.#count === 0) this.#free();
  }
  #free(): void {
    this.#owner?.holding.delete(this);
    this.#owner = null;
    this.#count = 0;
    this.#changes.changed();
  }
  locked(_ctx?: CallContext): boolean {
    return this.#owner !== null;
  }
  owned(o: Owner): boolean {
    return this.#owner === o;
  }
  releaseSave(_o: Owner): number {
    const count = this.#count;
    this.#free();
    return count;
  }
  restore(o: Owner, saved: number, signal: AbortSignal): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#try(o, saved), undefined, signal, "acquire()");
  }
  drop(o: Owner): void {
    if (this.#owner === o) this.#free();
  }
}

/** A semaphore; `bound` ≥ 0 makes it bounded. Units a connection took come back when it ends. */
export class SemaphoreImpl implements Holdable {
  #value: number;
  #bound: number;
  #held = new Map<Owner, number>();
  #changes = new Changes();
  constructor(value: unknown = 1, bounded = false) {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw native(new RangeError(`Invalid semaphore value: ${value}: expected an integer from 0`));
    }
    this.#value = value;
    this.#bound = bounded ? value : -1;
  }
  #try(o: Owner): boolean {
    if (this.#value <= 0) return false;
    this.#value--;
    this.#held.set(o, (this.#held.get(o) ?? 0) + 1);
    o.holding.add(this);
    return true;
  }
  acquire(wait: unknown, ctx: CallContext): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#try(ctx.owner), wait, ctx.signal, "acquire()");
  }
  release(ctx: CallContext): void {
    if (this.#bound >= 0 && this.#value >= this.#bound) {
      throw native(
        new RangeError(
          `Cannot release BoundedSemaphore: it is already at its initial value ${this.#bound} (released more often than acquired)`,
        ),
      );
    }
    this.#value++;
    const mine = this.#held.get(ctx.owner) ?? 0;
    if (mine > 1) this.#held.set(ctx.owner, mine - 1);
    else if (mine === 1) {
      this.#held.delete(ctx.owner);
      ctx.owner.holding.delete(this);
    }
    this.#changes.changed();
  }
  getValue(_ctx?: CallContext): number {
    return this.#value;
  }
  drop(o: Owner): void {
    const n = this.#held.get(o);
    if (!n) return;
    this.#held.delete(o);
    this.#value = this.#bound >= 0 ? Math.min(this.#value + n, this.#bound) : this.#value + n;
    this.#changes.changed();
  }
}

/** A condition variable on a server lock or rlock (its own, or one given). */
export class ConditionImpl {
  #lock: LockImpl | RLockImpl;
  #waiters: { notified: boolean }[] = [];
  #changes = new Changes();
  constructor(lock?: LockImpl | RLockImpl) {
    this.#lock = lock ?? new RLockImpl();
  }
  /** The type of its lock, as the table names it. */
  get lockType(): "lock" | "rlock" {
    return this.#lock instanceof LockImpl ? "lock" : "rlock";
  }
  acquire(wait: unknown, ctx: CallContext): boolean | Promise<boolean> {
    return this.#lock.acquire(wait, ctx);
  }
  release(ctx: CallContext): void {
    if (!this.#lock.owned(ctx.owner)) throw notHeld("release the condition's lock");
    this.#lock.release(ctx);
  }
  async wait(timeout: number | undefined, ctx: CallContext): Promise<boolean> {
    const o = ctx.owner;
    if (!this.#lock.owned(o)) throw notHeld("wait on the condition");
    const me = { notified: false };
    this.#waiters.push(me);
    const saved = this.#lock.releaseSave(o);
    try {
      return await this.#changes.until(() => me.notified, { timeout }, ctx.signal, "wait()");
    } finally {
      const i = this.#waiters.indexOf(me);
      if (i >= 0) this.#waiters.splice(i, 1);
      // Taken back before wait() returns or rejects, as Python's; not for a connection that ended.
      if (!o.gone) await this.#lock.restore(o, saved, new AbortController().signal);
    }
  }
  notify(n: number, ctx: CallContext): void {
    if (!this.#lock.owned(ctx.owner)) throw notHeld("notify");
    for (const w of this.#waiters) {
      if (n <= 0) break;
      if (!w.notified) {
        w.notified = true;
        n--;
      }
    }
    this.#changes.changed();
  }
  notifyAll(ctx: CallContext): void {
    this.notify(Infinity, ctx);
  }
}

/** An event flag. */
export class EventImpl {
  #flag = false;
  #changes = new Changes();
  set(_ctx?: CallContext): void {
    this.#flag = true;
    this.#changes.changed();
  }
  clear(_ctx?: CallContext): void {
    this.#flag = false;
  }
  isSet(_ctx?: CallContext): boolean {
    return this.#flag;
  }
  wait(timeout: number | undefined, ctx: CallContext): boolean | Promise<boolean> {
    return this.#changes.until(() => this.#flag, { timeout }, ctx.signal, "wait()");
  }
}

interface Generation {
  count: number;
  broken: boolean;
}

/** A barrier for `parties` waiters; a timeout, abort() or reset() breaks the waiting generation. */
export class BarrierImpl {
  #parties: number;
  #timeout: number | undefined;
  #g: Generation = { count: 0, broken: false };
  #changes = new Changes();
  constructor(parties: unknown, options: { timeout?: number } = {}) {
    if (typeof parties !== "number" || !Number.isInteger(parties) || parties < 1) {
      throw native(new RangeError(`Invalid parties: ${parties}: expected an integer from 1`));
    }
    this.#parties = parties;
    this.#timeout = options.timeout;
  }
  async wait(timeout: number | undefined, ctx: CallContext): Promise<number> {
    const g = this.#g;
    if (g.broken) throw native(new BrokenBarrierError());
    const index = g.count++;
    if (g.count === this.#parties) {
      this.#g = { count: 0, broken: false };
      this.#changes.changed();
      return index;
    }
    let passed = false;
    try {
      passed = await this.#changes.until(
        () => this.#g !== g || g.broken,
        { timeout: timeout ?? this.#timeout },
        ctx.signal,
        "wait()",
      );
    } finally {
      if (!passed) this.#break(g); // timed out or cancelled: the others must not wait forever
    }
    if (!passed) {
      throw native(
        new BrokenBarrierError(`Barrier is broken: wait timed out after ${timeout ?? this.#timeout} ms`),
      );
    }
    if (g.broken) throw native(new BrokenBarrierError());
    return index;
  }
  #break(g: Generation): void {
    if (g.broken || this.#g !== g) return;
    g.broken = true;
    this.#changes.changed();
  }
  abort(_ctx?: CallContext): void {
    this.#break(this.#g);
  }
  reset(_ctx?: CallContext): void {
    this.#g.broken = true;
    this.#g = { count: 0, broken: false };
    this.#changes.changed();
  }
  parties(_ctx?: CallContext): number {
    return this.#parties;
  }
  nWaiting(_ctx?: CallContext): number {
    return this.#g.broken ? 0 : this.#g.count;
  }
  broken(_ctx?: CallContext): boolean {
    return this.#g.broken;
  }
}

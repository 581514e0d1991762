/**
 * The queue a manager's server holds (CPython's manager serves a `queue.Queue` the same way).
 *
 * @module
 */
import { QueueEmptyError, QueueFullError } from "./errors.ts";
import { Changes, native } from "./_manager_objects.ts";

/** A queue living in the server; `put`, `get` and `join` may wait (until the request's signal). */
export class QueueImpl {
  #items: unknown[] = [];
  #maxsize: number;
  #unfinished = 0;
  #changes = new Changes();
  constructor(maxsize = 0) {
    if (typeof maxsize !== "number" || !Number.isInteger(maxsize) || maxsize < 0) {
      throw native(new RangeError(`Invalid maxsize: ${maxsize}: expected an integer from 0 (unbounded)`));
    }
    this.#maxsize = maxsize;
  }
  #full(): boolean {
    return this.#maxsize > 0 && this.#items.length >= this.#maxsize;
  }
  #fullError(): QueueFullError {
    return native(new QueueFullError(`Queue is full: it holds its maxsize of ${this.#maxsize} items`));
  }
  #tryPut(item: unknown): boolean {
    if (this.#full()) return false;
    this.#items.push(item);
    this.#unfinished++;
    this.#changes.changed();
    return true;
  }
  put(item: unknown, wait: unknown, signal: AbortSignal): void | Promise<void> {
    const put = this.#changes.until(() => this.#tryPut(item), wait, signal, "put()");
    const check = (ok: boolean) => {
      if (!ok) throw this.#fullError();
    };
    return typeof put === "boolean" ? check(put) : put.then(check);
  }
  putNowait(item: unknown): void {
    if (!this.#tryPut(item)) throw this.#fullError();
  }
  get(wait: unknown, signal: AbortSignal): unknown {
    let item: unknown;
    const take = () => {
      if (this.#items.length === 0) return false;
      item = this.#items.shift();
      this.#changes.changed();
      return true;
    };
    const got = this.#changes.until(take, wait, signal, "get()");
    const check = (ok: boolean) => {
      if (!ok) throw native(new QueueEmptyError());
      return item;
    };
    return typeof got === "boolean" ? check(got) : got.then(check);
  }
  getNowait(): unknown {
    if (this.#items.length === 0) throw native(new QueueEmptyError());
    const item = this.#items.shift();
    this.#changes.changed();
    return item;
  }
  qsize(): number {
    return this.#items.length;
  }
  empty(): boolean {
    return this.#items.length === 0;
  }
  full(): boolean {
    return this.#full();
  }
  taskDone(): void {
    if (this.#unfinished <= 0) {
      throw native(
        new RangeError("Cannot mark a task done: taskDone() was called more times than items were put"),
      );
    }
    if (--this.#unfinished === 0) this.#changes.changed();
  }
  async join(signal: AbortSignal): Promise<void> {
    await this.#changes.until(() => this.#unfinished === 0, undefined, signal, "join()");
  }
}

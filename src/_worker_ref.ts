/**
 * The Worker's own (unexported) ref/unref: `Worker.prototype[privateWorkerRef](false)` lets the
 * program end while the Worker runs (node:worker_threads' `unref()` is built on it). Found by
 * shape, as it has no public name; without it a Worker keeps the program alive until it ends.
 * Used by daemon threads (`thread.ts`) and the fd sharer's thread (`_fd_sharer.ts`).
 *
 * @module
 */
export const workerRef: ((this: Worker, ref: boolean) => void) | undefined = (() => {
  const proto = Worker.prototype as unknown as Record<symbol, unknown>;
  for (const sym of Object.getOwnPropertySymbols(proto)) {
    const fn = proto[sym];
    if (sym.description === undefined && typeof fn === "function" && /refCount/.test(String(fn))) {
      return fn as (this: Worker, ref: boolean) => void;
    }
  }
  return undefined;
})();

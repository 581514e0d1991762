/**
 * The types a manager's server makes: what each can be asked and how it is made (the built-in
 * ones, and the user's, loaded from their modules).
 *
 * @module
 */
import { DictImpl, ListImpl, NamespaceImpl, native, repr, ValueImpl } from "./_manager_objects.ts";
import { QueueImpl } from "./_manager_queue.ts";
import { importModule } from "./_import.ts";
import {
  BarrierImpl,
  ConditionImpl,
  EventImpl,
  LockImpl,
  RLockImpl,
  SemaphoreImpl,
} from "./_manager_sync.ts";

/** A user-defined type the server makes objects of (Python's `BaseManager.register`). */
export interface CustomTypeSpec {
  /** The module that exports the class (a URL or an absolute path). */
  module: string;
  /** The name of the exported class (or function returning an object). */
  export: string;
  /** The methods a proxy may call; default: every public method of the class. */
  exposed?: string[];
}

/** How objects of one type are made and used. */
export interface TypeInfo {
  methods: ReadonlySet<string>;
  /** Gets `{ owner, signal }` last on every call (synchronization objects). */
  ctx?: boolean;
  /** These methods get the request's signal last (queue calls that wait). */
  waits?: ReadonlySet<string>;
  make(args: unknown[], find: (id: unknown) => object | undefined): object;
  /** What the proxy needs besides the id and type, from the object and the `create` arguments. */
  extra?(impl: object, args: unknown[]): Record<string, unknown>;
  /** The ids of objects of the table that the new object uses (held while it lives). */
  holds?(args: unknown[]): number[];
}

const QUEUE_METHODS = ["put", "putNowait", "get", "getNowait", "qsize", "empty", "full"];
const LOCK_METHODS = new Set(["acquire", "release", "locked"]);
const SEM_METHODS = new Set(["acquire", "release", "getValue"]);

/** What each built-in type can be asked, and how it is made. */
export const TYPES: Record<string, TypeInfo> = {
  dict: {
    methods: new Set([
      "get",
      "set",
      "has",
      "delete",
      "keys",
      "values",
      "entries",
      "size",
      "clear",
      "update",
      "pop",
      "setdefault",
      "toObject",
    ]),
    make: ([entries]) => new DictImpl(entries as [unknown, unknown][] | undefined),
  },
  list: {
    methods: new Set([
      "get",
      "set",
      "append",
      "extend",
      "insert",
      "pop",
      "remove",
      "index",
      "count",
      "length",
      "slice",
      "sort",
      "reverse",
      "clear",
      "toArray",
    ]),
    make: ([items]) => new ListImpl(items as unknown[] | undefined),
  },
  namespace: {
    methods: new Set(["get", "set", "delete", "toObject"]),
    make: ([init]) => new NamespaceImpl(init as Record<string, unknown> | undefined),
  },
  value: { methods: new Set(["get", "set"]), make: ([v]) => new ValueImpl(v) },
  queue: {
    methods: new Set(QUEUE_METHODS),
    waits: new Set(["put", "get"]),
    make: ([n]) => new QueueImpl(n as number | undefined),
  },
  joinableQueue: {
    methods: new Set([...QUEUE_METHODS, "taskDone", "join"]),
    waits: new Set(["put", "get", "join"]),
    make: ([n]) => new QueueImpl(n as number | undefined),
  },
  lock: { methods: LOCK_METHODS, ctx: true, make: () => new LockImpl() },
  rlock: { methods: LOCK_METHODS, ctx: true, make: () => new RLockImpl() },
  semaphore: { methods: SEM_METHODS, ctx: true, make: ([n]) => new SemaphoreImpl(n ?? 1) },
  boundedSemaphore: { methods: SEM_METHODS, ctx: true, make: ([n]) => new SemaphoreImpl(n ?? 1, true) },
  condition: {
    methods: new Set(["acquire", "release", "wait", "notify", "notifyAll"]),
    ctx: true,
    make: ([lockId], find) => {
      if (lockId === undefined) return new ConditionImpl();
      const lock = find(lockId);
      if (!(lock instanceof LockImpl || lock instanceof RLockImpl)) {
        throw native(new TypeError("Invalid lock for a condition: expected a lock or rlock of this manager"));
      }
      return new ConditionImpl(lock);
    },
    // The proxy's `lock` is a proxy to the lock given (the client always gives one).
    extra: (c, [lockId]) => lockId === undefined ? {} : { lockId, lockType: (c as ConditionImpl).lockType },
    holds: ([lockId]) => lockId === undefined ? [] : [lockId as number],
  },
  event: { methods: new Set(["set", "clear", "isSet", "wait"]), ctx: true, make: () => new EventImpl() },
  barrier: {
    methods: new Set(["wait", "abort", "reset", "parties", "nWaiting", "broken"]),
    ctx: true,
    make: ([parties, options]) => new BarrierImpl(parties, options as { timeout?: number } | undefined),
    extra: (b) => ({ parties: (b as BarrierImpl).parties() }),
  },
};

/** The public methods of a class (and its bases), as Python's default `exposed`. */
function publicMethods(cls: { prototype: object }): string[] {
  const names = new Set<string>();
  for (let p = cls.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      const d = Object.getOwnPropertyDescriptor(p, name)!;
      if (name !== "constructor" && !name.startsWith("_") && typeof d.value === "function") names.add(name);
    }
  }
  return [...names];
}

/** Loads the user's types: imports each module and finds its export. */
export async function loadTypes(specs: Record<string, CustomTypeSpec>): Promise<Record<string, TypeInfo>> {
  const out: Record<string, TypeInfo> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (Object.hasOwn(TYPES, name)) {
      throw new TypeError(
        `Cannot register type ${repr(name)}: a built-in type has that name; choose another`,
      );
    }
    const mod = await importModule(spec.module);
    const make = mod[spec.export] as
      & (new (...args: unknown[]) => object)
      & ((...args: unknown[]) => object);
    if (typeof make !== "function") {
      throw new TypeError(
        `Cannot register type ${repr(name)}: ${spec.module} has no exported class or function ${
          repr(spec.export)
        }`,
      );
    }
    const exposed = spec.exposed ?? (make.prototype ? publicMethods(make) : []);
    out[name] = {
      methods: new Set(exposed),
      make: (args) => {
        try {
          return new make(...args);
        } catch (e) {
          if (e instanceof TypeError && !make.prototype) return make(...args); // an arrow factory
          throw e;
        }
      },
      extra: () => ({ exposed }),
    };
  }
  return out;
}

/** The layers under the public API: flag forwarding, serialization, the libc wrappers. */
import assert from "node:assert/strict";
import { forwardableFlags } from "../src/_flags.ts";
import { deserialize, receivedFd, registerReducer, serialize } from "../src/_reduction.ts";
import {
  close as closeFd,
  mapSharedMemory,
  NamedSemaphore,
  OS,
  pipe,
  read,
  unlinkSharedMemory,
  write,
} from "../native/mod.ts";

Deno.test("forwardableFlags keeps permission, config and import-map flags and drops the rest", () => {
  assert.deepEqual(
    forwardableFlags([
      "deno",
      "run",
      "--allow-read=/tmp,/x",
      "-N",
      "--watch",
      "-c",
      "cfg.json",
      "--import-map=im.json",
      "--v8-flags=--max-old-space-size=64",
      "main.ts",
      "--allow-write",
    ]),
    [
      "--allow-read=/tmp,/x",
      "-N",
      "-c",
      "cfg.json",
      "--import-map=im.json",
      "--v8-flags=--max-old-space-size=64",
    ],
  );
  // `deno test` flags that `deno run` refuses (--filter, --parallel) never reach a child.
  assert.deepEqual(
    forwardableFlags([
      "deno",
      "test",
      "-A",
      "--filter",
      "x",
      "--parallel",
      "tests/",
      "--config",
      "d.json",
      "--",
      "--allow-net",
    ]),
    ["-A", "--config", "d.json"],
  );
  // `deno main.ts` is `deno run main.ts`.
  assert.deepEqual(forwardableFlags(["deno", "--allow-ffi", "main.ts", "-A"]), ["--allow-ffi"]);
  assert.deepEqual(forwardableFlags(["deno", "main.ts"]), []);
  // Flags whose value needs "=" do not swallow the script: its arguments are never Deno flags.
  assert.deepEqual(forwardableFlags(["deno", "run", "--env-file", "main.ts", "--allow-all"]), []);
  assert.deepEqual(forwardableFlags(["deno", "run", "--inspect-wait", "-R", "main.ts", "-W"]), ["-R"]);
  assert.deepEqual(forwardableFlags(["deno", "run", "--lock", "my.lock", "-R", "main.ts"]), [
    "--lock",
    "my.lock",
    "-R",
  ]);
  assert.deepEqual(forwardableFlags(["deno", "run", "--lock", "-N", "main.ts"]), ["--lock", "-N"]);
  assert.deepEqual(forwardableFlags(["deno", "run", "--deny-net", "--no-prompt", "--unstable-kv", "m.ts"]), [
    "--deny-net",
    "--no-prompt",
    "--unstable-kv",
  ]);
});

Deno.test("serialize() round-trips structured-clone values and refuses functions at the call", () => {
  const value = { m: new Map([[1, new Set([2n])]]), d: new Date(3), u: new Uint16Array([4]), s: "x" };
  assert.deepEqual(deserialize(serialize(value)), value);
  assert.throws(
    () => serialize({ nested: [function work() {}] }),
    (e: Error) => e.name === "DataCloneError" && /work\(\) \{\} could not be cloned/.test(e.message),
  );
  assert.throws(() => serialize(Symbol("s")), (e: Error) => e.name === "DataCloneError");
});

class Token {
  constructor(readonly id: string) {}
}
registerReducer(Token, {
  name: "test.Token",
  reduce: (t) => t.id,
  revive: (id) => new Token(`${id} (revived)`),
});

Deno.test("serialize() sends registered library objects as handles and revives them in place", () => {
  const t = new Token("a");
  const value = { list: [t, 1], map: new Map([["k", t]]), same: t };
  const out = deserialize(serialize(value)) as typeof value;
  assert.ok(out.list[0] instanceof Token);
  assert.equal((out.list[0] as Token).id, "a (revived)");
  assert.equal(out.map.get("k"), out.list[0]); // one object stays one object
  assert.equal(out.same, out.list[0]);
  assert.equal(out.list[1], 1);
  // An object holding an fd travels inside a message too: the receiver gets its own copy of it.
  class Fd {
    constructor(readonly fd: number) {}
  }
  registerReducer(Fd, {
    name: "test.Fd",
    reduce: (f, ctx) => ctx.passFd(f.fd),
    revive: (n: number) => new Fd(receivedFd(n)),
  });
  const [r, w] = pipe();
  try {
    const [copy] = deserialize(serialize([new Fd(w)])) as [Fd];
    assert.notEqual(copy.fd, w);
    assert.equal(write(copy.fd, new Uint8Array([7])), 1);
    closeFd(copy.fd);
    const got = new Uint8Array(1);
    assert.equal(read(r, got), 1);
    assert.equal(got[0], 7);
  } finally {
    closeFd(r);
    closeFd(w);
  }
  // Deno's own resources cannot travel, and say what they are.
  assert.throws(() => serialize({ out: Deno.stdout }), /Deno\.Stdout/);
});

Deno.test("native errors name the syscall and errno, and map to Deno.errors", () => {
  assert.throws(
    () => NamedSemaphore.open("/mp-no-such-semaphore"),
    (e: Error & { errno?: number; syscall?: string }) =>
      e instanceof Deno.errors.NotFound && e.syscall === "sem_open" && e.errno === OS.errno.ENOENT &&
      /sem_open\(\/mp-no-such-semaphore\) failed: .*\(ENOENT\)/.test(e.message),
  );
  assert.throws(() => NamedSemaphore.create("/mp" + "x".repeat(40), 0), RangeError);
  assert.throws(() => NamedSemaphore.create("no-slash", 0), TypeError);
  const name = `/mpt${Deno.pid.toString(36)}f`;
  const m = mapSharedMemory(name, true, 16);
  try {
    assert.throws(() => mapSharedMemory(name, true, 16), Deno.errors.AlreadyExists);
    const again = mapSharedMemory(name, false);
    new Uint8Array(m.buffer)[3] = 9;
    assert.equal(again.size, 16);
    assert.equal(new Uint8Array(again.buffer)[3], 9);
    again.unmap();
  } finally {
    m.unmap();
    assert.equal(unlinkSharedMemory(name), true);
  }
  assert.equal(unlinkSharedMemory(name), false);
});

Deno.test("serialize() sends arrays of numbers exactly, holes and all", () => {
  const dense = Array.from({ length: 100 }, (_, i) => i * 1.5 - 7);
  dense[3] = -0;
  dense[4] = NaN;
  dense[5] = 2 ** 53;
  dense[6] = -Infinity;
  const out = deserialize(serialize(dense)) as number[];
  assert.deepEqual(out, dense);
  assert.ok(Object.is(out[3], -0));
  const sparse = Array.from({ length: 100 }, (_, i) => i);
  delete sparse[10];
  const back = deserialize(serialize(sparse)) as number[];
  assert.equal(10 in back, false);
  assert.deepEqual(back, sparse);
  const mixed = [...dense, "x"];
  assert.deepEqual(deserialize(serialize(mixed)), mixed);
});

Deno.test("NamedSemaphore waits accept fractional timeouts", async () => {
  const name = `/mpt${Deno.pid.toString(36)}w`;
  const sem = NamedSemaphore.create(name, 0);
  try {
    assert.equal(sem.waitSync(0.5), false);
    assert.equal(await sem.waitAsync(10.3), false);
    sem.post();
    assert.equal(sem.waitSync(2.7), true);
  } finally {
    sem.close();
    NamedSemaphore.unlink(name);
  }
});

Deno.test("NamedSemaphore.close() during a waitAsync frees the handle after the wait; an aborted wait passes its post on", async () => {
  const name = `/mpt${Deno.pid.toString(36)}c`;
  const sem = NamedSemaphore.create(name, 0);
  const other = NamedSemaphore.open(name);
  try {
    const pending = sem.waitAsync(5000);
    sem.close();
    assert.equal(sem.closed, true);
    assert.throws(() => sem.post(), Deno.errors.BadResource);
    other.post(); // the wait in flight still holds the handle, and takes this post
    assert.equal(await pending, true);
    // Aborted while waiting: rejects at once; the post the abandoned wait takes goes back.
    const ac = new AbortController();
    const aborted = other.waitAsync(200, ac.signal);
    ac.abort(new Error("stop"));
    await assert.rejects(aborted, /stop/);
    other.post();
    assert.equal(await other.waitAsync(5000), true);
    assert.equal(other.value(), 0);
  } finally {
    other.close();
    NamedSemaphore.unlink(name);
  }
});

Deno.test("serialize() finds library objects inside class instances, and refuses them inside errors", () => {
  class Holder {
    constructor(readonly token: Token, readonly n: number) {}
  }
  const out = deserialize(serialize({ h: new Holder(new Token("in"), 2) })) as {
    h: { token: Token; n: number };
  };
  assert.ok(out.h.token instanceof Token);
  assert.equal(out.h.token.id, "in (revived)");
  assert.equal(out.h.n, 2);
  assert.throws(
    () => serialize([new Error("with a cause", { cause: new Token("c") })]),
    (e: Error) => e.name === "DataCloneError" && /cause or fields hold/.test(e.message),
  );
  // Errors without our objects still travel whole.
  const err = deserialize(serialize([new TypeError("plain", { cause: 5 })])) as TypeError[];
  assert.ok(err[0] instanceof TypeError);
  assert.equal(err[0].cause, 5);
});

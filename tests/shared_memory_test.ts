import assert from "node:assert/strict";
import { Lock, Process, RLock, SharedArray, SharedMemory, Thread, Value } from "../mod.ts";
import { NamedSemaphore, unlinkSharedMemory } from "../native/mod.ts";
import { _resourceNames } from "../src/_sync_block.ts";
import * as fx from "./fixtures/shm_fixtures.ts";
import {
  cleanup,
  madeSince,
  runProgram,
  shmEntryExists,
  shmLeftSince,
  shmMappings,
  SPAWNS,
} from "./fixtures/helpers.ts";

const module = new URL("./fixtures/shm_fixtures.ts", import.meta.url);

Deno.test("SharedMemory: a created block is seen by name, and unlink() removes the name", () => {
  const shm = new SharedMemory({ create: true, size: 64 });
  try {
    assert.ok(!shm.name.startsWith("/"));
    assert.equal(shm.size, 64);
    assert.ok(shmEntryExists(`/${shm.name}`));
    shm.buf.set([1, 2, 3]);
    using other = new SharedMemory({ name: shm.name });
    assert.equal(other.size, 64);
    assert.deepEqual([...other.buf.subarray(0, 3)], [1, 2, 3]);
    other.buf[63] = 99;
    assert.equal(shm.buf[63], 99);
    assert.throws(
      () => new SharedMemory({ name: shm.name, create: true, size: 8 }),
      Deno.errors.AlreadyExists,
    );
  } finally {
    shm.close();
    shm.close();
    shm.unlink();
  }
  assert.equal(shm.buf.length, 0);
  assert.ok(!shmEntryExists(`/${shm.name}`));
  assert.throws(() => new SharedMemory({ name: shm.name }), Deno.errors.NotFound);
});

Deno.test("SharedMemory refuses a missing size or name with a clear error", () => {
  assert.throws(() => new SharedMemory({ create: true }), RangeError);
  assert.throws(() => new SharedMemory({ create: true, size: -1 }), RangeError);
  assert.throws(() => new SharedMemory(), /without its name/);
  assert.throws(() => new SharedMemory({ name: "mp-no-such-block" }), Deno.errors.NotFound);
});

Deno.test("Value holds one number of its type; 64-bit types hold bigints", () => {
  using a = new Value("i32", 5);
  using b = new Value("u8", 300);
  using c = new Value<bigint>("i64", -(2n ** 62n));
  using d = new Value("f32");
  assert.equal(a.value, 5);
  a.value += 2;
  assert.equal(a.value, 7);
  assert.equal(b.value, 300 % 256);
  assert.equal(c.value, -(2n ** 62n));
  assert.equal(d.value, 0);
  assert.throws(() => (c.value = 1 as never), TypeError);
  assert.throws(() => (a.value = 1n as never), TypeError);
  assert.throws(() => new Value("i128" as never), /Invalid type code "i128"/);
  assert.ok(a.getLock() instanceof RLock);
});

Deno.test("Value and SharedArray use the lock they are given, or none", () => {
  using lock = new Lock();
  using v = new Value("f64", 1.5, { lock });
  assert.equal(v.getLock(), lock);
  using raw = new SharedArray("u16", 3, { lock: false });
  assert.throws(() => raw.getLock(), /made with \{ lock: false \}/);
  assert.throws(() => new Value("i32", 0, { lock: "yes" as never }), TypeError);
});

Deno.test("SharedArray is zeros of a length, or holds the given items", () => {
  using zeros = new SharedArray("i32", 4);
  assert.ok(zeros.array instanceof Int32Array);
  assert.deepEqual([...zeros.array], [0, 0, 0, 0]);
  assert.equal(zeros.length, 4);
  using items = new SharedArray("u64", [1n, 2n, 2n ** 63n]);
  assert.deepEqual([...items.array], [1n, 2n, 2n ** 63n]);
  using empty = new SharedArray("f64", 0);
  assert.equal(empty.length, 0);
  assert.throws(() => new SharedArray("i32", -1), RangeError);
  assert.throws(() => new SharedArray("i64", [1, 2]), TypeError);
});

Deno.test("A name with a NUL character is a TypeError: nothing is created, attached to or removed under the cut name", () => {
  const victim = `mp-victim-${Deno.pid}`;
  using other = new SharedMemory({ name: victim, create: true, size: 8 });
  try {
    other.buf[0] = 42;
    const cut = `${victim}\0cd`;
    assert.throws(() => new SharedMemory({ name: cut, create: true, size: 8 }), TypeError);
    assert.throws(() => new SharedMemory({ name: cut }), /NUL character/);
    assert.throws(() => unlinkSharedMemory(`/${cut}`), TypeError);
    assert.throws(() => NamedSemaphore.unlink(`/${cut}`), TypeError);
    assert.throws(() => NamedSemaphore.create(`/${cut}`, 0), TypeError);
    assert.ok(shmEntryExists(`/${victim}`), "the other program's segment is still there");
    assert.equal(other.buf[0], 42);
  } finally {
    other.unlink();
  }
  assert.ok(!shmEntryExists(`/${victim}`));
});

Deno.test("A name with a line break is a TypeError, so the resource tracker (a name per line) never hears a cut name", () => {
  const victim = `mp-victim-nl-${Deno.pid}`;
  using other = new SharedMemory({ name: victim, create: true, size: 8 });
  try {
    const broken = `${victim}\nx`;
    assert.throws(() => new SharedMemory({ name: broken, create: true, size: 8 }), /line break/);
    assert.throws(() => unlinkSharedMemory(`/${broken}`), TypeError);
    assert.ok(shmEntryExists(`/${victim}`), "the segment under the cut name is still there");
  } finally {
    other.unlink();
  }
});

Deno.test("SharedArray refuses items that are not numbers of its type with TypeError, and leaves no block behind", () => {
  const left = shmLeftSince("v"); // Value/SharedArray blocks
  for (
    const [type, items] of [["i32", ["a"]], ["f64", [1, "2"]], ["u8", [null]], ["i32", [1n]], ["i64", [
      1,
    ]]] as const
  ) {
    assert.throws(() => new SharedArray(type, items as never), TypeError, `${type} ${String(items)}`);
  }
  assert.throws(() => new SharedArray("i32", ["a"] as never), /item 0 "a": a "i32" element holds a number/);
  assert.throws(() => new SharedArray("i32", null as never), TypeError);
  assert.throws(() => new SharedArray("i32", {} as never), TypeError);
  assert.deepEqual(left(), []);
});

Deno.test("SharedArray refuses a negative, fractional or non-finite size with RangeError", () => {
  const left = shmLeftSince("v"); // Value/SharedArray blocks
  for (const size of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => new SharedArray("i32", size), RangeError, String(size));
  }
  assert.deepEqual(left(), []);
});

Deno.test("Value refuses an initial value that is not a number of its type with TypeError, and leaves no block behind", () => {
  const left = shmLeftSince("v"); // Value/SharedArray blocks
  for (
    const [type, initial] of [["i32", "5"], ["f64", null], ["i64", 5], ["u32", 5n], ["f32", {}]] as const
  ) {
    assert.throws(
      () => new Value<number | bigint>(type, initial as never),
      TypeError,
      `${type} ${String(initial)}`,
    );
  }
  assert.deepEqual(left(), []);
  using v = new Value("i32", 3);
  assert.throws(() => (v.value = "4" as never), TypeError);
  assert.equal(v.value, 3);
});

Deno.test("Value.close() in the process that made it removes its block's name", () => {
  const left = shmLeftSince("v");
  const v = new Value("i32", 1);
  const names = left();
  assert.equal(names.length, 1);
  v.close();
  v.close();
  assert.ok(!shmEntryExists(`/${names[0]}`));
});

Deno.test({
  name: "SharedMemory, Value and SharedArray passed to a child see the same bytes",
  ...SPAWNS,
  async fn() {
    using shm = new SharedMemory({ create: true, size: 32 });
    using value = new Value<bigint>("u64", 0n);
    using array = new SharedArray("f64", 5);
    const p = new Process({ target: fx.writesShared, args: [shm, value, array], module });
    try {
      await p.start();
      await p.join(10_000);
      assert.equal(p.exitCode, 0);
    } finally {
      await cleanup(p);
      shm.unlink();
    }
    assert.equal(shm.buf[0], 7);
    assert.equal(shm.buf[31], 9);
    assert.equal(value.value, 2n ** 40n);
    assert.deepEqual([...array.array], [0, 1.5, 3, 4.5, 6]);
  },
});

Deno.test({
  name: "Two processes adding to a Value under its lock lose no update",
  ...SPAWNS,
  async fn() {
    using counter = new Value("i32", 0);
    const ps = [0, 1].map(() => new Process({ target: fx.increments, args: [counter, 300], module }));
    try {
      await Promise.all(ps.map((p) => p.start()));
      await Promise.all(ps.map((p) => p.join(30_000)));
      assert.deepEqual(ps.map((p) => p.exitCode), [0, 0]);
    } finally {
      await cleanup(...ps);
    }
    assert.equal(counter.value, 600);
  },
});

Deno.test({
  name:
    "Shared memory collected without close() is unmapped, and the Value and SharedArray blocks and their locks are unlinked; a kept view stays readable",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/shm_gc_program.ts", import.meta.url), {
      denoArgs: ["-A", "--v8-flags=--expose-gc"],
    });
    assert.equal(out.code, 0, out.stderr);
    const { made, left, mapped, shm, viewed } = JSON.parse(out.stdout);
    assert.equal(made.length, 10, "SharedMemory 1, Value 1, SharedArray 2, and 3 RLocks of 2 each");
    // Only the kept view's block is still mapped; SharedMemory keeps its name until unlink(), as
    // in Python; everything else is gone.
    assert.equal(mapped.length, 1);
    assert.ok(made.includes(mapped[0]) && mapped[0] !== shm);
    assert.deepEqual(left, [shm, mapped[0]].sort());
    assert.deepEqual(viewed, [1.5, 2.5]);
  },
});

Deno.test("Value.close() and SharedArray.close() close the lock they made, and leave a lock they were given open", () => {
  const lock = new Lock();
  try {
    const value = new Value("i32", 1);
    const own = value.getLock();
    const array = new SharedArray("u8", 2, { lock });
    const files = _resourceNames(own);
    assert.ok([...files.sem, ...files.shm].every(shmEntryExists));
    value.close();
    array.close();
    assert.throws(() => own.locked(), Deno.errors.BadResource);
    assert.ok(![...files.sem, ...files.shm].some(shmEntryExists));
    assert.equal(lock.locked(), false);
    assert.equal(lock.acquireSync(), true);
    lock.release();
  } finally {
    lock.close();
  }
});

Deno.test("SharedMemory, Value and SharedArray print their name and size, type and value, type and items", () => {
  const shm = new SharedMemory({ create: true, size: 100 });
  try {
    assert.equal(Deno.inspect(shm), `SharedMemory(name="${shm.name}", size=100)`);
    shm.close();
    assert.equal(Deno.inspect(shm), "SharedMemory(closed)");
  } finally {
    shm.unlink();
  }
  using value = new Value("i32", 3);
  using big = new Value<bigint>("i64", 5n);
  using floats = new SharedArray("f64", [1.5, 2.5]);
  using many = new SharedArray("u8", 12);
  assert.equal(Deno.inspect(value), 'Value("i32", 3)');
  assert.equal(Deno.inspect(big), 'Value("i64", 5n)');
  assert.equal(Deno.inspect(floats), 'SharedArray("f64", [1.5, 2.5])');
  assert.equal(Deno.inspect(many), 'SharedArray("u8", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ... 2 more])');
  // The type code picks the array type: no cast needed for arithmetic.
  const sum: number = floats.array.reduce((a, b) => a + b, 0);
  assert.equal(sum, 4);
  value.close();
  assert.equal(Deno.inspect(value), "Value(closed)");
});

Deno.test("The type code types the contents: a 64-bit Value holds a bigint, a SharedArray's array is its typed array", () => {
  using big = new Value("i64", 1n);
  using declared = new Value<bigint>("u64");
  using floats = new SharedArray("f64", [0.5]);
  const b: bigint = big.value + declared.value;
  const f: Float64Array = floats.array;
  assert.equal(b, 1n);
  assert.ok(f instanceof Float64Array);
  // Checked by the compiler (deno check fails when one of these compiles):
  // @ts-expect-error: an "i64" Value holds a bigint: write new Value<bigint>("i64") or give a bigint
  const untyped = () => new Value("i64");
  // @ts-expect-error: a "f64" array is not an Int32Array
  const wrongArray = (): Int32Array => floats.array;
  // @ts-expect-error: an "i32" Value holds a number
  const wrongInitial = () => new Value("i32", 5n);
  assert.equal(typeof untyped + typeof wrongArray + typeof wrongInitial, "functionfunctionfunction");
});

Deno.test("A Value closed in a thread leaves no mapping behind, of its block or of the lock it came with", async () => {
  const ours = madeSince(); // not by what was mapped before: test files beside this one map too
  using value = new Value("i32", 1);
  // Its block and its lock's (glibc maps a named semaphore's file too).
  const mine = shmMappings().filter(ours);
  assert.ok(mine.length >= 2, `mapped: ${mine}`);
  const thread = new Thread({ target: fx.incrementsAndCloses, args: [value], module });
  await thread.start();
  await thread.join(30_000);
  assert.equal(thread.exitCode, 0);
  assert.equal(value.value, 2);
  assert.deepEqual(shmMappings().filter((f) => mine.includes(f)).sort(), mine.sort());
});

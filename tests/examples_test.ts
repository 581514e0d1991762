/**
 * Smoke test of every example in tests/examples/: each runs as its own program, exits 0, and
 * prints what it teaches. An example without an entry in EXPECT fails this test: add one.
 */
import assert from "node:assert/strict";
import { runProgram, SPAWNS } from "./fixtures/helpers.ts";

const EXPECT: Record<string, (lines: string[]) => void> = {
  "no_lock.ts"(lines) {
    const running = lines.filter((l) => / is running$/.test(l));
    const done = lines.filter((l) => / is done$/.test(l));
    assert.equal(running.length, 5);
    assert.equal(done.length, 5);
    assert.deepEqual(new Set(running.map((l) => l.split(":")[0])), new Set(["0", "1", "2", "3", "4"]));
    assert.equal(new Set(running.map((l) => l.split(" ")[1])).size, 5, "five distinct pids");
    // The children meet at a Barrier(5) between their lines: all run before the first is done.
    assert.ok(lines.indexOf(running.at(-1)!) < lines.indexOf(done[0]), lines.join("\n"));
    for (const l of running) {
      const [n, pid] = l.split(/:? /);
      assert.ok(lines.indexOf(l) < lines.indexOf(`${n}: ${pid} is done`), `${n} runs before it is done`);
    }
  },
  "thread_target.ts"(lines) {
    assert.deepEqual(lines, [
      "greeter says hello 1 times",
      "greeter ended with code 0, alive: false",
      "back in MainThread",
    ]);
  },
  "thread_subclass.ts"(lines) {
    assert.deepEqual(lines, ["counter: 1", "counter: 2", "counter: 3", "counter exited with code 0"]);
  },
  "pool_map.ts"(lines) {
    assert.deepEqual(lines, [`[${Array.from({ length: 100 }, (_, i) => i * i).join(", ")}]`]);
  },
  "thread_pool.ts"(lines) {
    assert.deepEqual(lines, ["THREAD (6)", "POOL (4)", "SAME (4)", "API (3)", "AS (2)", "POOL (4)"]);
  },
  "pool_apply.ts"(lines) {
    assert.deepEqual(lines, Array.from({ length: 10 }, (_, i) => `${i} squared is ${i * i}`));
  },
  "apply_async.ts"(lines) {
    assert.deepEqual(lines, [
      "cubes: 0 1 8 27 64 125 216 343 512 729",
      "get(50) gave up: TimedOut",
      "get() waited: finally done",
    ]);
  },
  "apply_async_callback.ts"(lines) {
    assert.deepEqual(lines, [
      "collected: 0 2 4 6 8 10 12 14",
      "callbacks ran in the parent: true",
      "tasks ran elsewhere: true",
    ]);
  },
  "pool_vs_processes.ts"(lines) {
    assert.equal(lines[0], "results: 100 (checksum 2549868)");
    assert.match(lines[1], /^Pool of 4 workers: \d+ ms$/);
    assert.match(lines[2], /^100 separate processes, 4 at a time: \d+ ms$/);
  },
  "lock.ts"(lines) {
    assert.equal(lines.length, 10);
    // Under the lock each process's two lines stay together.
    for (let i = 0; i < 10; i += 2) {
      const [n, pid] = lines[i].match(/^(\d): (\d+) is running$/)!.slice(1);
      assert.equal(lines[i + 1], `${n}: ${pid} is done`);
    }
    assert.deepEqual(lines.filter((_, i) => i % 2 === 0).map((l) => l[0]).sort(), ["0", "1", "2", "3", "4"]);
  },
  "ticket_race.ts"(lines) {
    const split = lines.findIndex((l) => l.startsWith("With a Lock"));
    const unlocked = lines.slice(0, split);
    const locked = lines.slice(split);
    // The unlocked buyers all read before any writes (a Barrier): each sees the one ticket.
    assert.equal(
      unlocked.filter((l) => l.endsWith("bought a ticket (saw 1 left)")).length,
      3,
      lines.join("\n"),
    );
    assert.ok(unlocked.includes("=> 3 tickets sold (one existed)"), lines.join("\n"));
    assert.equal(locked.filter((l) => l.includes("bought a ticket")).length, 1);
    assert.equal(locked.filter((l) => l.endsWith("sold out")).length, 2);
    assert.equal(lines.at(-1), "=> 1 ticket sold");
  },
  "producer_consumer.ts"(lines) {
    const got = lines.slice(0, -1).map((l) =>
      l.match(/^consumer \d got item (\d) from producer (\d)$/)!.slice(1).join("/")
    );
    const expected = [0, 1, 2].flatMap((p) => [0, 1, 2, 3, 4].map((i) => `${i}/${p}`));
    assert.deepEqual(got.sort(), expected.sort());
    assert.equal(lines.at(-1), "15 items consumed");
  },
  "joinable_queue.ts"(lines) {
    assert.equal(lines[0], "all tasks done: 10 results");
    const squares = lines.slice(1).map((l) =>
      l.match(/^(\d+) squared is (\d+) \(pid \d+\)$/)!.slice(1).map(Number)
    );
    assert.deepEqual(
      squares.sort((a, b) => a[0] - b[0]),
      Array.from({ length: 10 }, (_, i) => [i + 1, (i + 1) ** 2]),
    );
  },
  "pipe_echo.ts"(lines) {
    assert.deepEqual(lines, [
      "sent hello got back HELLO",
      "sent [ 1, 2, 3 ] got back [ 1, 2, 3 ]",
      'sent { nested: Map(1) { "k" => "v" } } got back { nested: Map(1) { "k" => "v" } }',
      "child exited with 0",
    ]);
  },
  "pipe_eof.ts"(lines) {
    for (const w of [0, 1]) {
      assert.deepEqual(
        lines.filter((l) => l.endsWith(`from writer ${w}`)),
        [0, 1, 2].map((i) => `line ${i} from writer ${w}`),
      );
    }
    assert.equal(lines.length, 7);
    assert.equal(lines.at(-1), "EOFError after 6 lines: every write end is closed");
  },
  "shared_counter.ts"(lines) {
    assert.deepEqual(lines, ["counter: 400", "squares: 0 1 4 9"]);
  },
  "manager_remote.ts"(lines) {
    assert.deepEqual(lines, [
      "published: done, jobs, lock, results",
      "worker programs exited with 0 and 0",
      "squares: 1→1 2→4 3→9 4→16 5→25 6→36 7→49 8→64 9→81 10→100",
      "jobs counted under the lock: 10",
    ]);
  },
  "manager_dict.ts"(lines) {
    assert.deepEqual(lines, [
      "worker 0: 0",
      "worker 1: 1",
      "worker 2: 4",
      "worker 3: 9",
      "hello from worker 0",
      "hello from worker 1",
      "hello from worker 2",
      "hello from worker 3",
    ]);
  },
  "subclass.ts"(lines) {
    assert.deepEqual(lines, [
      "rocket: 3",
      "rocket: 2",
      "rocket: 1",
      "rocket: liftoff",
      "rocket exited with code 0",
    ]);
  },
};

/**
 * How long an example may run before it is killed: only a bound against a hang, never a timing
 * check. Generous, as the suite runs on 2 shared cores with the load of other suites;
 * pool_vs_processes starts 104 processes (it took over 60 s at a load of 28).
 */
const TIMEOUT_MS: Record<string, number> = { "pool_vs_processes.ts": 300_000 };

const dir = new URL("./examples/", import.meta.url);
const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
  n.endsWith(".ts") && n !== "run_all.ts"
).sort();

for (const name of names) {
  Deno.test({
    name: `The example ${name} runs and prints what it teaches`,
    ...SPAWNS,
    async fn() {
      const expect = EXPECT[name];
      assert.ok(expect, `tests/examples_test.ts has no expectation for ${name}: add one`);
      const out = await runProgram(new URL(name, dir), {
        cwd: new URL("../", import.meta.url).pathname,
        timeoutMs: TIMEOUT_MS[name] ?? 120_000,
      });
      assert.equal(out.code, 0, `${name} failed:\n${out.stderr}`);
      expect(out.stdout.trimEnd().split("\n"));
    },
  });
}

Deno.test("deno.json has one example:<name> task per example, and none for a missing file", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const tasks = Object.entries(config.tasks as Record<string, string>).filter(([k]) =>
    k.startsWith("example:")
  );
  assert.deepEqual(tasks.map(([k]) => k.slice("example:".length) + ".ts").sort(), names);
  for (const [name, command] of tasks) {
    assert.equal(command, `deno run -A tests/examples/${name.slice("example:".length)}.ts`);
  }
});

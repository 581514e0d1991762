/**
 * How a whole program ends: these tests run a parent program (tests/fixtures/parent_program.ts)
 * as its own `deno run`, end it in each way, and check that no child and no /dev/shm entry of
 * ours is left behind.
 */
import assert from "node:assert/strict";
import {
  close,
  kill,
  mapSharedMemory,
  NamedSemaphore,
  pipe,
  unlinkSharedMemory,
  writeAll,
} from "../native/mod.ts";
import { spawnDeno as spawnChild } from "../src/_spawn.ts";
import { raceTimeout, TIMED_OUT } from "../src/_wait.ts";
import {
  isRunning,
  runProgram,
  shmEntryExists,
  shmFilesOf,
  spawnDeno,
  SPAWNS,
  type StartedProgram,
  startProgram,
  tempFile,
  waitUntil,
} from "./fixtures/helpers.ts";

const PROGRAM = new URL("./fixtures/parent_program.ts", import.meta.url);

type Started = StartedProgram<{ children: number[]; names: string[] }>;

/**
 * Starts the parent program in `mode`, waits (bounded) for the JSON line it prints once it is
 * ready, and runs `fn`; then kills whatever of it still runs (the program, its children), however
 * `fn` ended.
 */
async function withProgram(mode: string, fn: (s: Started) => Promise<void>): Promise<void> {
  const s: Started = await startProgram(PROGRAM, { args: [mode], timeoutMs: 60_000 });
  try {
    await fn(s);
  } finally {
    await s.stop();
    s.first.children.forEach((pid) => isRunning(pid) && Deno.kill(pid, "SIGKILL"));
  }
}

/** Waits for every child of the program to be gone and every name it made to be unlinked. */
async function assertNothingLeft({ first: info }: Started): Promise<void> {
  const gone = await waitUntil(() => info.children.every((pid) => !isRunning(pid)), 10_000);
  assert.ok(gone, `children still running: ${info.children.filter(isRunning)}`);
  const clean = await waitUntil(() => info.names.every((n) => !shmEntryExists(n)), 10_000);
  assert.ok(clean, `left in /dev/shm: ${info.names.filter(shmEntryExists)}`);
}

for (const signal of ["SIGKILL", "SIGTERM"] as const) {
  Deno.test({
    name: `A parent killed by ${signal} leaves no child running and nothing in /dev/shm`,
    ...SPAWNS,
    fn: () =>
      withProgram("wait", async (s) => {
        assert.equal(s.first.children.length, 2);
        assert.ok(s.first.children.every(isRunning));
        assert.ok(s.first.names.every(shmEntryExists));
        s.child.kill(signal);
        const status = await s.ended();
        assert.equal(status.signal, signal);
        await assertNothingLeft(s);
      }),
  });
}

Deno.test({
  name: "SIGKILL to the program's whole process group leaves no child running and nothing in /dev/shm",
  ...SPAWNS,
  // The program leads a process group of its own, so that the signal spares this test runner.
  fn: () =>
    withProgram("group", async (s) => {
      try {
        assert.ok(s.first.names.every(shmEntryExists));
        assert.ok(kill(-s.child.pid, "SIGKILL"), "the program's process group is gone already");
        const status = await s.ended();
        assert.equal(status.signal, "SIGKILL");
        await assertNothingLeft(s);
      } finally {
        for (const name of s.first.names) {
          NamedSemaphore.unlink(name);
          unlinkSharedMemory(name);
        }
      }
    }),
});

Deno.test({
  name: "A parent that dies of an uncaught error leaves no child running and nothing in /dev/shm",
  ...SPAWNS,
  fn: () =>
    withProgram("throw", async (s) => {
      const status = await s.ended();
      assert.equal(status.code, 1);
      assert.equal((await s.lines.rest()).trim(), "non-daemon child done");
      await assertNothingLeft(s);
    }),
});

Deno.test({
  name: "A program waits for its non-daemon children, terminates its daemon children, and cleans /dev/shm",
  ...SPAWNS,
  fn: () =>
    withProgram("return", async (s) => {
      const [daemonPid] = s.first.children;
      const status = await s.ended();
      assert.equal(status.code, 0);
      assert.equal((await s.lines.rest()).trim(), "non-daemon child done");
      assert.ok(await waitUntil(() => !isRunning(daemonPid), 10_000), "the daemon child outlived its parent");
      await assertNothingLeft(s);
    }),
});

Deno.test({
  name: "A target that throws prints its error and stack under a 'Process <name>:' header",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/throwing_program.ts", import.meta.url));
    assert.equal(out.stdout.trim(), "exitCode=1");
    assert.match(
      out.stderr,
      /^Process thrower:\nRangeError: the child failed on purpose\n\s+at throwsRangeError \(file:.*process_fixtures\.ts:\d+:\d+\)/m,
    );
  },
});

Deno.test({
  name: "A child runs with exactly its parent's permissions and V8 flags",
  ...SPAWNS,
  async fn() {
    const out = await runProgram(new URL("./fixtures/flags_program.ts", import.meta.url), {
      denoArgs: ["--allow-ffi", "--allow-run", "--allow-read", "--v8-flags=--expose-gc"],
    });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), {
      read: "granted",
      write: "prompt",
      net: "prompt",
      env: "prompt",
      ffi: "granted",
      gc: true,
    });
  },
});

for (
  const [mode, code, how] of [
    ["throw", 1, "an uncaught error"],
    ["reject", 1, "an unhandled rejection"],
    ["exit", 3, "Deno.exit(3)"],
    ["exit-at-once", 4, "Deno.exit(4) right after start() (not awaited)"],
  ] as const
) {
  for (const kind of ["child", "thread"]) {
    Deno.test({
      name: `A program that ends with ${how} first waits for its running non-daemon ${kind}`,
      ...SPAWNS,
      async fn() {
        using result = tempFile();
        const out = await runProgram(new URL("./fixtures/exit_waits_program.ts", import.meta.url), {
          args: [mode, result.path, kind],
        });
        // A child's pid (a thread's program prints its own, which has ended by now).
        const childPid = Number(out.stdout.trim());
        try {
          assert.equal(out.code, code, out.stderr);
          assert.equal(
            Deno.readTextFileSync(result.path),
            "done",
            `the ${kind} was ended before it wrote its result`,
          );
          if (code === 1) assert.match(out.stderr, /^error: Uncaught .*on purpose/m);
        } finally {
          if (childPid > 0 && isRunning(childPid)) Deno.kill(childPid, "SIGKILL");
        }
      },
    });
  }
}

Deno.test({
  name: "A program that exits before a child received its arguments ends, and says the child did not run",
  ...SPAWNS,
  async fn() {
    using result = tempFile();
    const out = await runProgram(new URL("./fixtures/exit_waits_program.ts", import.meta.url), {
      args: ["exit-at-once-big", result.path],
    });
    const childPid = Number(out.stdout.trim());
    try {
      assert.equal(out.code, 4, out.stderr);
      assert.match(
        out.stderr,
        /^Process-1 did not run: the program ended before its arguments were sent to it$/m,
      );
      assert.ok(await waitUntil(() => !isRunning(childPid), 10_000), "the child still runs");
      assert.equal(Deno.readTextFileSync(result.path), "");
    } finally {
      if (childPid > 0 && isRunning(childPid)) Deno.kill(childPid, "SIGKILL");
    }
  },
});

Deno.test({
  name: "An unhandled rejection that the program's own listener prevents does not end it",
  ...SPAWNS,
  async fn() {
    using result = tempFile();
    const out = await runProgram(new URL("./fixtures/exit_waits_program.ts", import.meta.url), {
      args: ["reject-handled", result.path],
    });
    const [childPid, said] = out.stdout.trim().split("\n");
    try {
      assert.equal(out.code, 0, out.stderr);
      assert.equal(said, "still running");
      assert.equal(Deno.readTextFileSync(result.path), "done");
    } finally {
      if (Number(childPid) > 0 && isRunning(Number(childPid))) Deno.kill(Number(childPid), "SIGKILL");
    }
  },
});

const KILLED_WHILE_MAKING = new URL("./fixtures/killed_while_making_program.ts", import.meta.url);

/** Unlinks a leftover of a failed test (nothing when it is gone). */
function unlinkIfThere({ kind, name }: { kind: string; name: string }): void {
  if (kind === "sem") NamedSemaphore.unlink(name);
  else unlinkSharedMemory(name);
}

for (const what of ["SharedMemory", "Value", "Lock", "Queue"]) {
  Deno.test({
    name: `A process killed the moment the first name of its new ${what} exists leaves nothing in /dev/shm`,
    ...SPAWNS,
    async fn() {
      // Names used to be tracked after they were made: a SIGKILL or SIGTERM in between (a pool
      // worker terminated by its parent while it imports) left the name for good.
      const out = await runProgram(KILLED_WHILE_MAKING, {
        args: [what],
      });
      const first = out.stdout.split("\n")[0];
      assert.notEqual(first, "not killed");
      const resource = JSON.parse(first) as { kind: string; name: string };
      try {
        assert.ok(out.code !== 0, out.stderr);
        const gone = await waitUntil(() => !shmEntryExists(resource.name), 10_000);
        assert.ok(gone, `left in /dev/shm: ${resource.kind} ${resource.name}`);
      } finally {
        unlinkIfThere(resource);
      }
    },
  });
}

Deno.test({
  name:
    "Without --allow-run, making a SharedMemory, Value, Lock or Queue fails and leaves nothing in /dev/shm",
  ...SPAWNS,
  async fn() {
    // The tracker cannot start: the name used to be made first, then tracking it threw.
    for (const what of ["SharedMemory", "Value", "Lock", "Queue"]) {
      const child = spawnDeno(
        ["run", "--allow-ffi", "--allow-read", "--allow-env", KILLED_WHILE_MAKING.pathname, what, "catch"],
        { stderr: "inherit" },
      );
      const pid = child.pid;
      const out = new TextDecoder().decode((await child.output()).stdout).trim();
      try {
        assert.match(out, /^NotCapable: Cannot start a process: run deno with --allow-run/);
        assert.deepEqual(shmFilesOf(pid), [], `${what} left its names`);
      } finally {
        for (const file of shmFilesOf(pid)) Deno.removeSync(`/dev/shm/${file}`);
      }
    }
  },
});

Deno.test({
  name:
    "The resource tracker unlinks a name tracked twice and untracked once, and spares one untracked as often as tracked",
  ...SPAWNS,
  async fn() {
    const tag = `/mpt${Deno.pid.toString(36)}c`;
    const [twice, once] = [`${tag}2`, `${tag}1`];
    for (const name of [twice, once]) mapSharedMemory(name, true, 4).unmap();
    const [readEnd, writeEnd] = pipe();
    let tracker: Deno.ChildProcess;
    try {
      tracker = spawnChild({
        args: [new URL("../src/_tracker_main.ts", import.meta.url).href, String(readEnd)],
        fds: [readEnd],
      });
      const lines = [`+shm ${twice}`, `+shm ${once}`, `+shm ${twice}`, `-shm ${once}`, `-shm ${twice}`, ""];
      writeAll(writeEnd, new TextEncoder().encode(lines.join("\n")));
    } finally {
      close(readEnd);
      close(writeEnd); // EOF: the tracker unlinks what is still tracked, and ends
    }
    let ended: Deno.CommandStatus | typeof TIMED_OUT = TIMED_OUT;
    try {
      ended = await raceTimeout(tracker.status, 20_000);
      assert.notEqual(ended, TIMED_OUT, "the tracker did not end within 20 s of its EOF");
      assert.equal(shmEntryExists(twice), false, "tracked twice, untracked once: it must be unlinked");
      assert.equal(
        shmEntryExists(once),
        true,
        "untracked as often as tracked: it is not the tracker's any more",
      );
    } finally {
      if (ended === TIMED_OUT) tracker.kill("SIGKILL");
      await tracker.status;
      for (const name of [twice, once]) unlinkSharedMemory(name);
    }
  },
});

/**
 * The one wait loop (`src/_wait.ts`): its steps, its learning, the native calls it parks in, and
 * its one driver (`src/_wait_drive.ts`).
 */
import assert from "node:assert/strict";
import {
  ANSWER_PARK_MS,
  Deadline,
  Eagerness,
  PAID_PARKS,
  PARK_MS,
  SLICE_MS,
  type Step,
  waitSteps,
} from "../src/_wait.ts";
import { type Doer, drive, TURN_BUDGET_MS } from "../src/_wait_drive.ts";
import { close as closeFd, cpuTurns, OS, pipe, pollFds, write } from "../native/mod.ts";

Deno.test("The wait loop registers once, parks once, then sleeps in slices, and return() undoes the registration", () => {
  const calls: string[] = [];
  const steps = waitSteps(
    { tryTake: () => false },
    new Deadline(Infinity),
    new Eagerness(),
    () => {
      calls.push("register");
      return () => calls.push("unregister");
    },
  );
  const seen: Step[] = [];
  let step = steps.next();
  for (let i = 0; i < 4 && !step.done; i++) {
    seen.push(step.value);
    step = steps.next(false);
  }
  assert.deepEqual(seen, [
    { park: true, ms: PARK_MS },
    { park: false, ms: SLICE_MS },
    { park: false, ms: SLICE_MS },
    { park: false, ms: SLICE_MS },
  ]);
  assert.deepEqual(calls, ["register"]);
  steps.return(false);
  assert.deepEqual(calls, ["register", "unregister"]);
});

Deno.test("The wait loop ends as soon as a wake-up lets tryTake() succeed, and undoes the registration", () => {
  let available = false;
  let registered = 0;
  const steps = waitSteps(
    { tryTake: () => available },
    new Deadline(Infinity),
    new Eagerness(),
    () => (registered++, () => registered--),
  );
  assert.equal((steps.next().value as Step).park, true);
  assert.equal((steps.next(false).value as Step).park, false);
  available = true;
  assert.deepEqual(steps.next(true), { done: true, value: true });
  assert.equal(registered, 0);
});

Deno.test("The wait loop passes on a wake-up it took when the deadline passes before tryTake() succeeds", () => {
  const log: string[] = [];
  // A clock of the test's own: a real 10 ms could pass before the first step on a loaded machine.
  let left = 10;
  const deadline: Deadline = { at: Infinity, left: () => left };
  const steps = waitSteps(
    { tryTake: () => false, stray: () => log.push("stray"), passOn: () => log.push("passOn") },
    deadline,
    new Eagerness(),
  );
  const first = steps.next();
  assert.equal(first.done, false);
  left = 0; // the deadline has passed when the step reports its wake-up
  assert.deepEqual(steps.next(true), { done: true, value: false });
  assert.deepEqual(log, ["stray", "passOn"]);
});

/** Steps that never succeed by themselves, and what happened to them (`log`). */
function loggedSteps(log: string[], tryTake = () => false) {
  return waitSteps(
    { tryTake },
    new Deadline(Infinity),
    new Eagerness(),
    () => (log.push("register"), () => log.push("unregister")),
  );
}

Deno.test("An abort that comes after a sleep ended empty-handed, before the loop goes on, ends the wait: the next try would have succeeded", async () => {
  // The race a Condition.wait() met in CI: its slice timed out, then notify() and abort() ran in
  // one turn, then the loop went on. The abort must win over the notification it had not taken.
  const ac = new AbortController();
  let available = false;
  const steps = waitSteps(
    { tryTake: () => available },
    new Deadline(Infinity),
    new Eagerness(),
    undefined,
    0,
  );
  const doer = {
    park: () => false,
    sleep: () => {
      const slice = Promise.resolve(false); // the slice has ended; its answer is on its way
      available = true;
      ac.abort();
      return slice;
    },
    signal: ac.signal,
  };
  const waited = drive(steps, doer);
  assert.ok(waited instanceof Promise);
  await assert.rejects(waited, (e: Error) => e.name === "AbortError");
  assert.equal(available, true, "the notification was there to take");
});

Deno.test("Once a thread's waits kept it from its event loop for TURN_BUDGET_MS, a park sleeps instead (the loop turns), and parks come back after that turn", async () => {
  const seen: string[] = [];
  function* steps(): Generator<Step, boolean, boolean> {
    for (let i = 0; i < 8; i++) yield { park: true, ms: 4 };
    return false;
  }
  await new Promise((r) => setTimeout(r, 2)); // a turn: whatever earlier tests blocked is forgotten
  const waited = drive(steps(), {
    park: (ms) => {
      seen.push("park");
      const until = performance.now() + ms; // a peer that answers late: the park lasts its length
      while (performance.now() < until);
      return false;
    },
    sleep: () => {
      seen.push("sleep");
      return new Promise<boolean>((r) => setTimeout(() => r(false), 2)); // ends in a turn
    },
  });
  assert.equal(await waited, false);
  const runs = seen.join(",").split("sleep").map((run) => run.split(",").filter(Boolean).length);
  assert.ok(runs.length >= 3, `parks of 4 ms slept at least twice in 32 ms: ${seen.join(", ")}`);
  assert.ok(runs.every((parks) => parks * 4 <= TURN_BUDGET_MS), `parks between sleeps: ${runs}`);
  assert.ok(
    runs.slice(1, -1).every((parks) => parks > 0),
    `a sleep's turn brought parks back: ${seen.join(", ")}`,
  );
});

/**
 * Drives waits answered at once (with 2 ms of the caller's own work between them) until one lets
 * the event loop turn first, as one does once the thread was kept from it for TURN_BUDGET_MS.
 */
function waitUntilATurn(doer: Doer): { answer: Promise<boolean>; before: number } {
  // deno-lint-ignore require-yield
  function* answered(): Generator<Step, boolean, boolean> {
    return true;
  }
  for (let before = 0; before < 100; before++) {
    const answer = drive(answered(), doer);
    if (answer instanceof Promise) return { answer, before };
    assert.equal(answer, true);
    const until = performance.now() + 2;
    while (performance.now() < until);
  }
  throw new Error("no wait let the event loop turn in 200 ms");
}

Deno.test("A wait that lets the event loop turn first looks at its abort after that turn: an abort in it wins over the try", async () => {
  await new Promise((r) => setTimeout(r, 2)); // a turn: whatever earlier tests blocked is forgotten
  const ac = new AbortController();
  let aborted = false;
  setTimeout(() => (aborted = true, ac.abort()), 0); // runs in the turn, not before
  const { answer, before } = waitUntilATurn({
    park: () => false,
    sleep: () => Promise.resolve(false),
    signal: ac.signal,
  });
  assert.ok(before >= 4, `waits answered on the thread first: ${before}`);
  await assert.rejects(answer, (e: Error) => e.name === "AbortError");
  assert.ok(aborted);
});

Deno.test("A wait that lets the event loop turn first answers false when its doer says the turn stopped it", async () => {
  await new Promise((r) => setTimeout(r, 2));
  let stopped = false;
  setTimeout(() => stopped = true, 0); // runs in the turn, not before
  const ended: string[] = [];
  const { answer, before } = waitUntilATurn({
    park: () => false,
    sleep: () => Promise.resolve(false),
    stopped: () => stopped,
    end: () => ended.push("end"),
  });
  assert.equal(await answer, false);
  assert.ok(stopped);
  assert.equal(ended.length, before + 1, "end() ran once for every wait, the stopped one included");
});

Deno.test("A wait that lets the event loop turn first ends once however it ends: its park throws after the turn", async () => {
  await new Promise((r) => setTimeout(r, 2)); // a turn: whatever earlier tests blocked is forgotten
  function* parkOnce(): Generator<Step, boolean, boolean> {
    return yield { park: true, ms: 0.001 };
  }
  let timerRan = false;
  setTimeout(() => timerRan = true, 0); // runs in the turn, not before
  let ends = 0;
  let slept = false;
  const doer = {
    park: () => {
      if (timerRan) throw new Error("the park failed");
      return true;
    },
    sleep: () => (slept = true, Promise.resolve(true)), // a park past the budget: not the case here
    end: () => ends++,
  };
  for (let waits = 1; waits <= 1000; waits++) {
    slept = false;
    const answer = drive(parkOnce(), doer);
    if (answer instanceof Promise && !slept) {
      await assert.rejects(answer, /the park failed/);
      assert.equal(ends, waits, "end() ran once for every wait, the failed one included");
      return;
    }
    assert.equal(await answer, true);
    const until = performance.now() + 0.2;
    while (performance.now() < until);
  }
  throw new Error("no wait let the event loop turn in 1000 waits");
});

Deno.test("The driver answers in the same call, a boolean and no promise, when a park ends the wait", () => {
  const log: string[] = [];
  let available = false;
  const result = drive(loggedSteps(log, () => available), {
    park: (ms) => (log.push(`park ${ms}`), available = true),
    sleep: () => {
      throw new Error("no sleep was due");
    },
    check: () => log.push("check"),
    end: () => log.push("end"),
  });
  assert.equal(result, true);
  assert.deepEqual(log, ["register", `park ${PARK_MS}`, "check", "unregister", "end"]);
});

Deno.test("The driver keeps a wait whose sleeps answer on the thread synchronous to its end (every step blocks)", () => {
  const log: string[] = [];
  let sleeps = 0;
  const block = (ms: number) => (log.push(`${ms}`), ++sleeps === 3);
  const result: boolean = drive(loggedSteps(log, () => sleeps === 3), {
    park: block,
    sleep: block,
    blocking: true,
  });
  assert.equal(result, true);
  assert.deepEqual(log, ["register", `${PARK_MS}`, `${SLICE_MS}`, `${SLICE_MS}`, "unregister"]);
});

Deno.test("A sleep that says null (stopped) ends the wait with false, synchronously or not, and the steps are returned", async () => {
  const here: string[] = [];
  const now = drive(loggedSteps(here), { park: () => false, sleep: () => null, end: () => here.push("end") });
  assert.equal(now, false);
  assert.deepEqual(here, ["register", "unregister", "end"]);
  const off: string[] = [];
  const later = drive(loggedSteps(off), {
    park: () => false,
    sleep: () => Promise.resolve(null),
    end: () => off.push("end"),
  });
  assert.ok(later instanceof Promise);
  assert.deepEqual(off, ["register"], "still waiting");
  assert.equal(await later, false);
  assert.deepEqual(off, ["register", "unregister", "end"]);
});

Deno.test("The driver returns the steps and calls end() once when a step or check() throws, on the thread or off it", async () => {
  const parkLog: string[] = [];
  assert.throws(
    () =>
      drive(loggedSteps(parkLog), {
        park: () => {
          throw new Error("park failed");
        },
        sleep: () => false,
        end: () => parkLog.push("end"),
      }),
    /park failed/,
  );
  assert.deepEqual(parkLog, ["register", "unregister", "end"]);
  const checkLog: string[] = [];
  let closed = false;
  const waited = drive(loggedSteps(checkLog), {
    park: () => false,
    sleep: () => (closed = true, Promise.resolve(false)),
    check: () => {
      if (closed) throw new Deno.errors.BadResource("closed while waiting");
    },
    end: () => checkLog.push("end"),
  });
  await assert.rejects(waited as Promise<boolean>, Deno.errors.BadResource);
  assert.deepEqual(checkLog, ["register", "unregister", "end"]);
  const sleepLog: string[] = [];
  const rejected = drive(loggedSteps(sleepLog), {
    park: () => false,
    sleep: () => Promise.reject(new Error("sleep failed")),
    end: () => sleepLog.push("end"),
  });
  await assert.rejects(rejected as Promise<boolean>, /sleep failed/);
  assert.deepEqual(sleepLog, ["register", "unregister", "end"]);
});

Deno.test("An abort seen after a park that took nothing throws at once; after a step that took a wake-up the loop keeps it", async () => {
  const ac = new AbortController();
  ac.abort(new Error("stop waiting"));
  const log: string[] = [];
  const went = () => {
    throw new Error("the wait went on after the abort");
  };
  assert.throws(
    () => drive(loggedSteps(log), { park: () => false, sleep: went, signal: ac.signal }),
    /stop waiting/,
  );
  assert.deepEqual(log, ["register", "unregister"]);
  // The wake-up was a post taken for this waiter: the try that follows takes the unit, the wait succeeds.
  let posted = false;
  const late = new AbortController();
  const waited = drive(loggedSteps([], () => posted), {
    park: () => false,
    sleep: () => (posted = true, late.abort(), Promise.resolve(true)),
    signal: late.signal,
  });
  assert.equal(await waited, true);
});

Deno.test("The wait loop parks for the park length it is given, and with 0 it neither spins nor parks", () => {
  const long = waitSteps(
    { tryTake: () => false },
    new Deadline(Infinity),
    new Eagerness(),
    undefined,
    ANSWER_PARK_MS,
  );
  assert.deepEqual(long.next().value, { park: true, ms: ANSWER_PARK_MS });
  long.return(false);
  let tries = 0;
  const never = waitSteps(
    { tryTake: () => (tries++, false) },
    new Deadline(Infinity),
    new Eagerness(),
    undefined,
    0,
  );
  assert.deepEqual(never.next().value, { park: false, ms: SLICE_MS });
  assert.equal(tries, 1, "one try, no spin, no second try before the first sleep");
  never.return(false);
});

Deno.test("A wake-up ends a wait whose wake-ups are the take (an fd's readiness) without another try", () => {
  let tries = 0;
  const steps = waitSteps(
    { tryTake: () => (tries++, false), wakeTakes: true },
    new Deadline(Infinity),
    new Eagerness(),
    undefined,
    0,
  );
  steps.next();
  const before = tries;
  assert.deepEqual(steps.next(true), { done: true, value: true });
  assert.equal(tries, before);
});

Deno.test("Waits answered at once let the event loop turn once they kept it TURN_BUDGET_MS from it: a tight exchange does not starve timers", async () => {
  // deno-lint-ignore require-yield
  function* answered(): Generator<Step, boolean, boolean> {
    return true; // taken at the first try
  }
  let ticks = 0;
  const turnsAt: number[] = [];
  const ticker = setInterval(() => ticks++, 1);
  try {
    const t0 = performance.now();
    while (turnsAt.length < 3) {
      if (performance.now() - t0 > 10_000) throw new Error(`${turnsAt.length} turns in 10 s`);
      const answer = drive(answered(), { park: () => false, sleep: () => Promise.resolve(false) });
      if (answer instanceof Promise) turnsAt.push(performance.now());
      assert.equal(await answer, true);
      const until = performance.now() + 0.05; // the exchange's own work, no turn
      while (performance.now() < until);
    }
  } finally {
    clearInterval(ticker);
  }
  // After a turn, the next comes once the waits kept the loop from turning for the budget again.
  for (let i = 1; i < turnsAt.length; i++) {
    assert.ok(turnsAt[i] - turnsAt[i - 1] >= TURN_BUDGET_MS, `turns at ${turnsAt.map((t) => t.toFixed(1))}`);
  }
  assert.ok(ticks >= 2, `a 1 ms interval ran ${ticks} times in 3 turns`);
});

Deno.test("A wait that is not allowed to wait at all yields no step", () => {
  const steps = waitSteps({ tryTake: () => false }, new Deadline(0), new Eagerness());
  assert.deepEqual(steps.next(), { done: true, value: false });
});

Deno.test("Eagerness parks: a miss costs nothing, misses in a row skip 2^(n-1)-1 waits (at most 63), a success resets", () => {
  const eager = new Eagerness();
  /** How many waits skip their park before one parks again. */
  const skipped = () => {
    let n = 0;
    while (!eager.parks()) n++;
    return n;
  };
  assert.equal(skipped(), 0);
  eager.parked(false); // 1st miss in a row
  assert.equal(skipped(), 0);
  eager.parked(false); // 2nd
  assert.equal(skipped(), 1);
  eager.parked(false); // 3rd
  assert.equal(skipped(), 3);
  for (let i = 0; i < 10; i++) eager.parked(false);
  assert.equal(skipped(), 63);
  eager.parked(true);
  assert.equal(skipped(), 0);
  eager.parked(false);
  assert.equal(skipped(), 0);
});

Deno.test("Eagerness parks up to ANSWER_PARK_MS once PAID_PARKS parks in a row ended their waits, and one miss brings back the short park", () => {
  const eager = new Eagerness();
  for (let i = 0; i < PAID_PARKS - 1; i++) eager.parked(true);
  assert.equal(eager.parkMs(PARK_MS), PARK_MS, "one paid park short of the run");
  eager.parked(true);
  assert.equal(eager.parkMs(PARK_MS), ANSWER_PARK_MS);
  assert.equal(eager.parkMs(0), ANSWER_PARK_MS, "parkMs is only asked for a wait that parks");
  eager.parked(false);
  assert.equal(eager.parkMs(PARK_MS), PARK_MS);
  for (let i = 0; i < PAID_PARKS - 1; i++) eager.parked(true);
  assert.equal(eager.parkMs(PARK_MS), PARK_MS, "a miss starts the run again");
});

Deno.test("The wait loop parks up to ANSWER_PARK_MS after paid parks, and a wait that may not park still does not", () => {
  const eager = new Eagerness();
  for (let i = 0; i < PAID_PARKS; i++) eager.parked(true);
  const long = waitSteps({ tryTake: () => false }, new Deadline(Infinity), eager);
  assert.deepEqual(long.next().value, { park: true, ms: ANSWER_PARK_MS });
  long.return(false);
  // A deadline 2 ms away whatever the time (no test on how fast this thread runs).
  const twoMsLeft = new (class extends Deadline {
    override left() {
      return 2;
    }
  })(Infinity);
  const short = waitSteps({ tryTake: () => false }, twoMsLeft, eager);
  assert.deepEqual(short.next().value, { park: true, ms: 2 }, "a park never outlasts the deadline");
  short.return(false);
  const never = waitSteps({ tryTake: () => false }, new Deadline(Infinity), eager, undefined, 0);
  assert.deepEqual(never.next().value, { park: false, ms: SLICE_MS });
  never.return(false);
});

Deno.test("Eagerness with every core taken spins while most recent spins paid, then only every 16th wait until they pay again", () => {
  const eager = new Eagerness();
  assert.equal(eager.spins(false), true);
  for (let i = 0; i < 6; i++) eager.spun(false); // 1 -> (7/8)^6 < 1/2
  const pattern = Array.from({ length: 32 }, () => eager.spins(false));
  assert.deepEqual(pattern.map((s, i) => s ? i : -1).filter((i) => i >= 0), [15, 31]);
  for (let i = 0; i < 8; i++) eager.spun(true);
  assert.equal(eager.spins(false), true);
  assert.equal(eager.spins(false), true);
});

Deno.test("Eagerness with a core free keeps spinning after a few misses and stops only once spins nearly never pay", () => {
  const eager = new Eagerness();
  for (let i = 0; i < 6; i++) eager.spun(false); // (7/8)^6 ≈ 0.45: with every core taken it stops here
  assert.equal(eager.spins(true), true);
  assert.equal(eager.spins(false), false);
  for (let i = 0; i < 10; i++) eager.spun(false); // (7/8)^16 ≈ 0.12 < 1/8
  const pattern = Array.from({ length: 16 }, () => eager.spins(true)); // the probe count moved once above
  assert.deepEqual(pattern.map((s, i) => s ? i : -1).filter((i) => i >= 0), [14]);
  eager.spun(true); // one paying spin is enough to spin again with a core free
  assert.equal(eager.spins(true), true);
});

Deno.test("pollFds honours a timeout of a fraction of a millisecond (ppoll): nothing for an empty pipe, the fd once it is readable", () => {
  const [r, w] = pipe();
  try {
    assert.deepEqual(pollFds([r], OS.POLLIN, 0.2), []);
    assert.equal(write(w, new Uint8Array([1])), 1);
    assert.deepEqual(pollFds([r], OS.POLLIN, 0.2), [r]);
  } finally {
    closeFd(r);
    closeFd(w);
  }
});

Deno.test("cpuTurns() reads this thread's turns on a CPU on Linux: counts that never go down, a new turn after a sleep", async () => {
  const first = cpuTurns();
  if (Deno.build.os !== "linux") return;
  assert.ok(first && Number.isInteger(first.waitedNs) && first.waitedNs >= 0, `got ${JSON.stringify(first)}`);
  assert.ok(Number.isInteger(first.turns) && first.turns >= 1, `got ${JSON.stringify(first)}`);
  await new Promise((r) => setTimeout(r, 5)); // the event loop sleeps: the next run is a new turn
  const second = cpuTurns()!;
  assert.ok(second.waitedNs >= first.waitedNs, `${second.waitedNs} < ${first.waitedNs}`);
  assert.ok(second.turns > first.turns, `${second.turns} <= ${first.turns}`);
});

/**
 * A/B of this checkout against another one (a detached worktree of the commit before a change),
 * for the question "did this change make X slower?" on a noisy, shared machine.
 *
 * ```sh
 * git worktree add --detach ../base <commit>
 * deno run -A bench/ab.ts ../base [thread|process|load|map|apply|threadmap|threadapply|handoff|roundtrip|queue|barrier] [--reps=N]
 * ```
 *
 * `AB_THREAD=1` runs the hand-off, round trip and queue modes with a `Thread` instead of a
 * `Process`. `AB_THIS=<checkout>` measures that checkout instead of this one (to bisect between two older
 * commits); `AB_ROUNDS=N` sets the hand-off's rounds (3000: ~20 ms a sample, which one noisy
 * moment moves by 30%; 30000 settle it better).
 *
 * Why not two `bench:compare` runs: with 2 shared cores, the wall time of one run moves by 30%
 * and more with what else runs meanwhile (two runs of the same commit differ as much as the
 * regressions looked for), and a run of A then a run of B meet different moments. Here both
 * libraries are loaded into ONE process (their module URLs differ), and each repetition measures
 * A then B (then B then A), so a noisy moment hurts both alike; and besides the wall time it
 * reports the CPU time spent (this process: `getrusage`, which counts its Worker threads; pool
 * workers: `/proc/<pid>/task/<tid>/schedstat`), which another process's load changes far less.
 * Each cell is the median over the repetitions (and the 25th percentile, for CPU).
 *
 * What it measures:
 * - `thread`: `Thread` start + join of an empty target (module load of the library in a Worker,
 *   handshake, exit);
 * - `process`: `Process` start + join of an empty target; besides this process's CPU, the child's
 *   (`cutime + cstime` of `/proc/self/stat`, counted in clock ticks of 10 ms: its mean over the
 *   repetitions is shown, as a median of ticks would say little);
 * - `load`: a Worker that imports `mod.ts` and says it is up (the library's module graph alone);
 * - `map`: as the bench row: a fresh `Pool(2)`, one warm-up map of 200 000 tiny tasks, then the
 *   timed map (CPU: this process, and the pool's worker processes);
 * - `apply`: a fresh `Pool(2)`, 200 warm-up `apply`s, then 2000 timed ones;
 * - `threadmap`, `threadapply`: the same with a `ThreadPool`;
 * - `handoff`, `roundtrip`, `queue`: the hand-off rows of `bench:compare` (the wait loop's hot
 *   paths) with their child process: 3000 async `Semaphore` hand-offs (ping, pong), 5000
 *   `Connection` round trips of a small object, 100 000 small objects one way through a `Queue`
 *   (CPU: this process, and the child; not the queue's producer, which ends as it is done);
 * - `barrier`: the bench row: 1000 passes of a 5-party `Barrier`, this process and 4 children
 *   (CPU: this process, and the children's once they ended, in clock ticks of 10 ms).
 *
 * Caveat: both libraries share one process (its heap, its event loop); startup costs of the
 * process itself are not measured, only what each library does once loaded.
 *
 * @module
 */
import process from "node:process";
import { median } from "./_measure.ts";

type Lib = {
  name: string;
  // deno-lint-ignore no-explicit-any
  mod: any;
  targets: URL;
  identity: (x: number) => number;
  empty: () => void;
  loadUrl: string;
  root: URL;
};

const WHAT = [
  "thread",
  "process",
  "load",
  "map",
  "apply",
  "threadmap",
  "threadapply",
  "handoff",
  "roundtrip",
  "queue",
  "barrier",
] as const;
type What = typeof WHAT[number];

async function library(root: URL, name: string): Promise<Lib> {
  const targets = new URL("bench/rows/_targets.ts", root);
  const t = await import(targets.href);
  const mod = new URL("mod.ts", root).href;
  return {
    name,
    mod: await import(mod),
    targets,
    identity: t.identity,
    empty: t.empty,
    loadUrl: `data:application/javascript,${
      encodeURIComponent(`import ${JSON.stringify(mod)}; postMessage(0);`)
    }`,
    root,
  };
}

/** CPU ms of this process (all its threads, ended ones included). */
function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU ms of the processes `pids` (their threads that still run). */
function childrenCpuMs(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    try {
      for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
        try {
          ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
        } catch { /* the thread ended */ }
      }
    } catch { /* the process ended, or no /proc */ }
  }
  return ns / 1e6;
}

/** CPU ms of this process's children that have ended and were waited for (clock ticks of 10 ms). */
function endedChildrenCpuMs(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "(comm)": state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here.
    return (Number(f[13]) + Number(f[14])) * 10;
  } catch {
    return 0; // no /proc: the children's CPU shows as 0
  }
}

/** The pids of this process's children (Linux: their parent in /proc/<pid>/stat), as the pool's workers are. */
function childPids(): number[] {
  const pids: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
        // "pid (comm) state ppid ...": comm may hold spaces, so count from its closing parenthesis.
        if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === Deno.pid) {
          pids.push(Number(e.name));
        }
      } catch { /* ended meanwhile */ }
    }
  } catch { /* no /proc: the workers' CPU shows as 0 */ }
  return pids;
}

interface Sample {
  wall: number;
  cpu: number;
  kids: number;
}

async function measure(lib: Lib, what: What): Promise<Sample> {
  if (what === "thread") {
    const t = new lib.mod.Thread({ target: lib.empty, module: lib.targets });
    const c0 = selfCpuMs();
    const t0 = performance.now();
    await t.start();
    await t.join();
    return { wall: performance.now() - t0, cpu: selfCpuMs() - c0, kids: 0 };
  }
  if (what === "process") {
    const p = new lib.mod.Process({ target: lib.empty, module: lib.targets });
    try {
      const c0 = selfCpuMs();
      const k0 = endedChildrenCpuMs();
      const t0 = performance.now();
      await p.start();
      await p.join();
      return { wall: performance.now() - t0, cpu: selfCpuMs() - c0, kids: endedChildrenCpuMs() - k0 };
    } finally {
      p.close();
    }
  }
  if (what === "load") {
    const c0 = selfCpuMs();
    const t0 = performance.now();
    const w = new Worker(lib.loadUrl, { type: "module" });
    await new Promise((resolve, reject) => {
      w.onmessage = resolve;
      w.onerror = (e) => (e.preventDefault(), reject(new Error(e.message)));
    });
    const wall = performance.now() - t0;
    w.terminate();
    await new Promise((r) => setTimeout(r, 5)); // let the Worker's thread end: its CPU counts
    return { wall, cpu: selfCpuMs() - c0, kids: 0 };
  }
  if (what === "handoff" || what === "roundtrip" || what === "queue") return await handOff(lib, what);
  if (what === "barrier") {
    const rows = await import(new URL("bench/rows/sync.ts", lib.root).href);
    const c0 = selfCpuMs();
    const k0 = endedChildrenCpuMs();
    const wall = await rows.barrierMs();
    return { wall, cpu: selfCpuMs() - c0, kids: endedChildrenCpuMs() - k0 };
  }
  const Pool = what.startsWith("thread") ? lib.mod.ThreadPool : lib.mod.Pool;
  const before = new Set(childPids());
  const pool = new Pool({ processes: 2, module: lib.targets });
  try {
    await pool.apply(lib.identity, [0]);
    const kids = childPids().filter((p) => !before.has(p));
    const xs = Array.from({ length: 200_000 }, (_, i) => i);
    const run = what.endsWith("map") ? () => pool.map(lib.identity, xs) : async () => {
      for (let i = 0; i < 2000; i++) await pool.apply(lib.identity, [i]);
    };
    if (what.endsWith("map")) await pool.map(lib.identity, xs);
    else for (let i = 0; i < 200; i++) await pool.apply(lib.identity, [i]);
    const c0 = selfCpuMs();
    const k0 = childrenCpuMs(kids);
    const t0 = performance.now();
    await run();
    return { wall: performance.now() - t0, cpu: selfCpuMs() - c0, kids: childrenCpuMs(kids) - k0 };
  } finally {
    await pool.terminate();
  }
}

/** One hand-off row: its child started and warmed up, then the timed part alone. */
async function handOff(lib: Lib, what: "handoff" | "roundtrip" | "queue"): Promise<Sample> {
  const { Pipe, Queue, Semaphore } = lib.mod;
  const Process = Deno.env.get("AB_THREAD") ? lib.mod.Thread : lib.mod.Process;
  const before = new Set(childPids());
  const module = new URL(
    what === "handoff" ? "bench/rows/_sync_targets.ts" : "bench/rows/_ipc_targets.ts",
    lib.root,
  );
  const targets = await import(module.href);
  const closers: { close(): void }[] = [];
  let child;
  let run: () => Promise<void>;
  let after = (): unknown => undefined;
  if (what === "handoff") {
    const [ping, back] = [new Semaphore(0), new Semaphore(0)];
    closers.push(ping, back);
    const rounds = Number(Deno.env.get("AB_ROUNDS") ?? 3000);
    child = new Process({ target: targets.pong, args: [ping, back, rounds + 301], module });
    const round = async () => {
      ping.release();
      await back.acquire();
    };
    await child.start();
    for (let i = 0; i < 300; i++) await round();
    run = async () => {
      for (let i = 0; i < rounds; i++) await round();
    };
    after = round; // the child's last one: it ends after the CPU is read
  } else if (what === "roundtrip") {
    const [mine, theirs] = Pipe();
    closers.push(mine, theirs);
    child = new Process({ target: targets.echo, args: [theirs], module });
    await child.start();
    theirs.close();
    const msg = { id: 1, name: "x" };
    for (let i = 0; i < 500; i++) await mine.send(msg), await mine.recv();
    run = async () => {
      for (let i = 0; i < 5000; i++) await mine.send(msg), await mine.recv();
    };
    after = () => mine.close(); // the child ends after the CPU is read
  } else {
    const q = new Queue();
    const [go, theirs] = Pipe();
    closers.push(go, theirs, q);
    child = new Process({ target: targets.produceSmall, args: [q, theirs, 100_000], module });
    await child.start();
    theirs.close();
    run = async () => {
      await go.send("go");
      let n = 0;
      while ((await q.get()) !== null) n++;
      if (n !== 100_000) throw new Error(`got ${n} of 100000 items`);
    };
  }
  try {
    const kids = childPids().filter((p) => !before.has(p));
    const c0 = selfCpuMs();
    const k0 = childrenCpuMs(kids);
    const t0 = performance.now();
    await run();
    // The queue's producer ends as it has put its last item: its CPU is not read (NaN).
    const kidsMs = what === "queue" ? NaN : childrenCpuMs(kids) - k0;
    const sample = { wall: performance.now() - t0, cpu: selfCpuMs() - c0, kids: kidsMs };
    await after();
    await child.join(10_000);
    return sample;
  } finally {
    for (const c of closers) c.close();
    if (child.isAlive()) child.kill();
    await child.join(5000);
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

if (import.meta.main) {
  const args = Deno.args.filter((a) => !a.startsWith("--reps="));
  const repsArg = Deno.args.find((a) => a.startsWith("--reps="));
  const [other, what = "thread"] = args;
  if (!other || !(WHAT as readonly string[]).includes(what)) {
    console.error(
      `Usage: deno run -A bench/ab.ts <other checkout> [${WHAT.join("|")}] [--reps=N]\n` +
        "  e.g. git worktree add --detach ../base <commit> && deno run -A bench/ab.ts ../base map",
    );
    Deno.exit(2);
  }
  const reps = repsArg ? Number(repsArg.slice("--reps=".length)) : what.includes("map") ? 12 : 30;
  const mine = Deno.env.get("AB_THIS");
  const base = new URL(other.endsWith("/") ? other : `${other}/`, `file://${Deno.cwd()}/`);
  const libs = [
    await library(base, `other (${other})`),
    await library(
      mine
        ? new URL(mine.endsWith("/") ? mine : `${mine}/`, `file://${Deno.cwd()}/`)
        : new URL("../", import.meta.url),
      mine ?? "this",
    ),
  ];
  const samples: Sample[][] = [[], []];
  for (const lib of libs) await measure(lib, what as What); // warm: first loads, first compiles
  for (let k = 0; k < reps; k++) {
    for (const i of k % 2 ? [1, 0] : [0, 1]) samples[i].push(await measure(libs[i], what as What));
  }
  const f = (x: number) => x.toFixed(2);
  console.log(`${what}, ${reps} repetitions each, interleaved (ms; median, CPU also 25th percentile):`);
  libs.forEach((lib, i) => {
    const s = samples[i];
    const cpu = s.map((x) => x.cpu);
    const kids = s.map((x) => x.kids);
    console.log(
      `  ${lib.name.padEnd(28)} wall ${f(median(s.map((x) => x.wall)))}  cpu ${f(median(cpu))} (p25 ${
        f(quantile(cpu, 0.25))
      })` + (what.includes("thread") || what === "load"
        ? ""
        : what === "process" || what === "barrier"
        ? `  child's cpu ${
          f(kids.reduce((a, b) => a + b, 0) / kids.length)
        } (mean)`
        : `  child/workers' cpu ${f(median(kids))}`),
    );
  });
}

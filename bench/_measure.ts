/**
 * Helpers shared by the benchmark rows and `compare.ts`: medians, timed loops, and running
 * the Python and C baselines as child processes (with a time limit, never left behind).
 *
 * @module
 */

/** Thrown by a measurement that cannot run here (a missing tool): shown as "—", not "error". */
export class Skipped extends Error {
  override name = "Skipped";
}

/** The median of some numbers (NaN for none). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Nanoseconds per call of a synchronous `op`, from a loop that runs at least `minMs`
 * (after a short warm-up so the JIT has compiled it).
 */
export function nsPerOp(op: () => void, minMs = 200): number {
  for (let i = 0; i < 20_000; i++) op();
  const batch = 10_000;
  let n = 0;
  let elapsed = 0;
  const t0 = performance.now();
  do {
    for (let i = 0; i < batch; i++) op();
    n += batch;
    elapsed = performance.now() - t0;
  } while (elapsed < minMs);
  return (elapsed * 1e6) / n;
}

/**
 * The Python source of {@linkcode nsPerOp}'s twin: runs `setup`, then times `body` in batches of
 * 10 000 for at least 200 ms after a warm-up batch, and prints ns per call.
 */
export const pythonNsPerOp = (setup: string, body: string): string => `
import time
${setup}
def loop(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        ${body}
    return time.perf_counter_ns() - t0
loop(10000)
n, dt = 0, 0
while dt < 2e8:
    dt += loop(10000)
    n += 10000
print(dt / n)
`;

/** Milliseconds taken by `fn` (sync or async). */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const live = new Set<Deno.ChildProcess>();

/** Kills the programs still running (on Ctrl-C: they must not outlive the benchmark). */
export function killRunning(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended
    }
  }
}

/**
 * Starts `cmd args` (stdin closed; stdout and stderr piped unless `io` says otherwise), tracked
 * until it ends so that {@linkcode killRunning} ends it: the one place the benchmarks spawn a
 * program. A missing program throws (synchronously).
 */
export function start(
  cmd: string,
  args: string[],
  io: { stdout?: "piped" | "null" | "inherit"; stderr?: "piped" | "null" | "inherit" } = {},
): Deno.ChildProcess {
  const { stdout = "piped", stderr = "piped" } = io;
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout, stderr }).spawn();
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/**
 * Runs a command to completion and returns its stdout. Rejects with the end of its stderr when it
 * fails, or when it runs longer than `timeoutMs` (it is killed then), and when `cmd` is missing.
 */
export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const child = start(cmd, args);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    const o = await child.output();
    if (timedOut) throw new Error(`${cmd} timed out after ${timeoutMs} ms`);
    if (!o.success) {
      const err = new TextDecoder().decode(o.stderr).trim().split("\n").slice(-3).join(" | ");
      throw new Error(
        `${cmd} exited with ${o.signal ? `signal ${o.signal}` : `code ${o.code}`}: ${err || "(no output)"}`,
      );
    }
    return new TextDecoder().decode(o.stdout);
  } finally {
    clearTimeout(timer);
  }
}

const versions = new Map<string, Promise<{ runs: boolean; line?: string }>>();

/** What `cmd --version` did (cached): whether it ran, and the first line it printed. */
function version(cmd: string): Promise<{ runs: boolean; line?: string }> {
  let known = versions.get(cmd);
  if (!known) {
    known = (async () => {
      try {
        const o = await start(cmd, ["--version"]).output();
        const text = new TextDecoder().decode(o.stdout).trim() || new TextDecoder().decode(o.stderr).trim();
        return { runs: o.success, line: text.split("\n")[0] || undefined };
      } catch {
        return { runs: false }; // missing
      }
    })();
    versions.set(cmd, known);
  }
  return known;
}

/** True when `cmd --version` runs (cached). */
export async function hasCommand(cmd: string): Promise<boolean> {
  return (await version(cmd)).runs;
}

/** The first line `cmd --version` prints (stdout, else stderr), or undefined when it is missing. */
export async function versionLine(cmd: string): Promise<string | undefined> {
  return (await version(cmd)).line;
}

/** The number on the last non-empty line of a program's output. */
export function lastNumber(stdout: string): number {
  const line = stdout.trim().split("\n").at(-1)?.trim() ?? "";
  const value = Number(line);
  if (line === "" || !Number.isFinite(value)) {
    throw new Error(`Expected a number on the last line of output, got "${line.slice(0, 60)}"`);
  }
  return value;
}

/** Runs Python source with `python3 -c` and returns the number it printed last. */
export async function runPython(source: string, timeoutMs?: number): Promise<number> {
  if (!(await hasCommand("python3"))) throw new Skipped("python3 is not installed");
  return lastNumber(await run("python3", ["-c", source], timeoutMs));
}

/**
 * Runs `fn` while `n` other processes (default: one per core) spin on a CPU each
 * (`deno eval "for(;;){}"`), so that what `fn` measures competes for every core, as on a busy
 * machine. The spinners are killed when `fn` ends, however it ends (and on Ctrl-C, with the
 * baselines).
 */
export async function withBusyCores<T>(fn: () => Promise<T>, n = navigator.hardwareConcurrency): Promise<T> {
  const spinners: Deno.ChildProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      spinners.push(start(Deno.execPath(), ["eval", "for (;;) {}"], { stdout: "null", stderr: "null" }));
    }
    // Let them get past start-up (~50 ms) and into their loops.
    await new Promise((r) => setTimeout(r, 500));
    return await fn();
  } finally {
    for (const child of spinners) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already ended
      }
      await child.status;
    }
  }
}

/** The 1-minute load average and the runnable count from /proc/loadavg ("" where there is none). */
export function loadLine(): string {
  try {
    const [one, , , running] = Deno.readTextFileSync("/proc/loadavg").split(" ");
    return `load ${one}, runnable now ${running.split("/")[0]}`;
  } catch {
    return "";
  }
}

/** How many spinning processes the busy rows start: one per core. */
export const BUSY: number = navigator.hardwareConcurrency;

/** A row's `around`: measures with {@linkcode BUSY} spinning processes, and says the load. */
export async function busyCores(measure: () => Promise<void>): Promise<void> {
  await withBusyCores(async () => {
    console.error(`    with ${BUSY} spinning processes: ${loadLine()}`);
    await measure();
    console.error(`    after: ${loadLine()}`);
  }, BUSY);
}

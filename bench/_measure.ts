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

/** Milliseconds taken by `fn` (sync or async). */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const available = new Map<string, Promise<boolean>>();

/** True when `cmd --version` runs (cached). */
export function hasCommand(cmd: string): Promise<boolean> {
  let known = available.get(cmd);
  if (!known) {
    // A missing program makes `output()` throw synchronously, not reject.
    known = (async () => {
      try {
        const o = await new Deno.Command(cmd, {
          args: ["--version"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        })
          .output();
        return o.success;
      } catch {
        return false;
      }
    })();
    available.set(cmd, known);
  }
  return known;
}

/** The first line `cmd --version` prints (stdout, else stderr), or undefined when it is missing. */
export async function versionLine(cmd: string): Promise<string | undefined> {
  try {
    const o = await new Deno.Command(cmd, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const text = new TextDecoder().decode(o.stdout).trim() || new TextDecoder().decode(o.stderr).trim();
    return text.split("\n")[0] || undefined;
  } catch {
    return undefined;
  }
}

const live = new Set<Deno.ChildProcess>();

/** Kills the baselines still running (on Ctrl-C: they must not outlive the benchmark). */
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
 * Runs a command to completion and returns its stdout. Rejects with the end of its stderr when it
 * fails, or when it runs longer than `timeoutMs` (it is killed then).
 */
export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  live.add(child);
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
    live.delete(child);
  }
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
      const child = new Deno.Command(Deno.execPath(), {
        args: ["eval", "for (;;) {}"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      live.add(child);
      spinners.push(child);
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
      live.delete(child);
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

/**
 * Processes through libc: ids (`getpid`/`getppid`), signals (`kill`, `signalNumber`), liveness
 * (`processAlive`: exists and, on Linux, is not a zombie), the parent-death signal (`prctl`),
 * waiting for a child's end without reaping it (`waitid(..., WNOWAIT)`, so Deno still collects
 * its status), `setsid`, and for the wait policy: how long this thread waits for a CPU
 * (`cpuTurns`) and giving way to another thread (`yieldCpu`). Every wrapper but `yieldCpu` checks
 * the return code and throws {@linkcode osError}.
 *
 * @module
 */
import { OS } from "./constants.ts";
import { cString, errno, libc } from "./libc.ts";
import { osError } from "./errors.ts";
import { readFileRaw } from "./fd.ts";

/** This process's id. */
export function getpid(): number {
  return libc().getpid();
}

/** The parent process's id. */
export function getppid(): number {
  return libc().getppid();
}

/** Sends `signal` to `pid`. Returns false when no such process exists (ESRCH). */
export function kill(pid: number, signal: number | string): boolean {
  const sig = typeof signal === "number" ? signal : OS.signals[signal];
  if (sig === undefined) throw new TypeError(`Unknown signal: ${signal}`);
  if (libc().kill(pid, sig) === 0) return true;
  const code = errno();
  if (code === OS.errno.ESRCH) return false;
  throw osError("kill", code, `${pid}, ${sig}`);
}

/**
 * True when `pid` names a live process: it exists and, on Linux, is not a zombie (a process that
 * has ended but whose parent has not reaped it yet counts as dead). A process owned by another
 * user (EPERM) counts as alive.
 */
export function processAlive(pid: number): boolean {
  try {
    if (!kill(pid, 0)) return false;
  } catch (e) {
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
  }
  if (Deno.build.os !== "linux") return true;
  let stat: string;
  try {
    stat = new TextDecoder().decode(readFileRaw(`/proc/${pid}/stat`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    return true;
  }
  // "pid (comm) S ...": the state letter follows the last ")"; comm may itself contain ")".
  const state = stat.charAt(stat.lastIndexOf(")") + 2);
  return state !== "Z" && state !== "X";
}

/** Asks the kernel to send `signal` to this process when its parent thread dies (Linux). */
export function setParentDeathSignal(signal: string): void {
  if (libc().prctl(OS.PR_SET_PDEATHSIG, BigInt(OS.signals[signal]), 0n, 0n, 0n) !== 0) {
    throw osError("prctl", errno(), "PR_SET_PDEATHSIG");
  }
}

/**
 * Blocks the thread until child `pid` of this process has ended, without reaping it: Deno still
 * collects its exit status as usual (`waitid(P_PID, pid, WEXITED | WNOWAIT)`). Returns at once
 * for a pid that is not (or no longer) a child of this process.
 */
export function waitForChildExit(pid: number): void {
  const info = new Uint8Array(OS.SIGINFO_SIZE);
  for (;;) {
    if (libc().waitid(OS.P_PID, pid, info, OS.WEXITED | OS.WNOWAIT) === 0) return;
    const code = errno();
    if (code === OS.errno.ECHILD) return;
    if (code !== OS.errno.EINTR) throw osError("waitid", code, `${pid}`);
  }
}

/**
 * Makes this process the leader of a new session and process group (`setsid()`): signals sent
 * to the group it came from (Ctrl-C, Ctrl-\, `kill -9 -PGID`) no longer reach it. False when it
 * already leads a group (EPERM).
 */
export function newSession(): boolean {
  if (libc().setsid() >= 0) return true;
  const code = errno();
  if (code === OS.errno.EPERM) return false;
  throw osError("setsid", code);
}

/** The number of a signal name, e.g. `"SIGKILL"` → 9. */
export function signalNumber(name: string): number | undefined {
  return OS.signals[name];
}

const SCHEDSTAT = cString("/proc/thread-self/schedstat");
const statBuf = new Uint8Array(96);

/** What the kernel counts of the calling thread's turns on a CPU ({@linkcode cpuTurns}). */
export interface CpuTurns {
  /** How long it waited, runnable, for a CPU since it started, in ns. */
  waitedNs: number;
  /** How many turns on a CPU it had. */
  turns: number;
}

/**
 * The calling thread's wait for a CPU and its number of turns (Linux: the second and third field
 * of `/proc/thread-self/schedstat`), or undefined where they cannot be read. Read with libc (no
 * read permission needed; ~10 µs).
 */
export function cpuTurns(): CpuTurns | undefined {
  const fd = libc().open(SCHEDSTAT, OS.O_RDONLY | OS.O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const n = Math.max(0, Number(libc().read(fd, statBuf, BigInt(statBuf.length))));
    // "1633419 52839 2": time on a CPU (ns), time waiting for one (ns), turns.
    const fields = [0, 0, 0];
    let field = 0;
    for (let at = 0; at < n && field < 3; at++) {
      const c = statBuf[at];
      if (c >= 0x30 && c <= 0x39) fields[field] = fields[field] * 10 + c - 0x30;
      else if (c === 0x20) field++;
      else break;
    }
    return field === 2 || field === 3 ? { waitedNs: fields[1], turns: fields[2] } : undefined;
  } finally {
    libc().close(fd);
  }
}

/**
 * Lets the threads that wait for this CPU run first (`sched_yield`); returns at once when none
 * does (~0.9 µs on the 2-core VM). Its result is not looked at: Linux's always succeeds.
 */
export function yieldCpu(): void {
  libc().sched_yield();
}

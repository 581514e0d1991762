/**
 * Processes through libc: ids (`getpid`/`getppid`), signals (`kill`, `signalNumber`), liveness
 * (`processAlive`: exists and, on Linux, is not a zombie), the parent-death signal (`prctl`),
 * waiting for a child's end without reaping it (`waitid(..., WNOWAIT)`, so Deno still collects
 * its status), `setsid`, and how many threads are runnable (`runnableThreads`, for the wait
 * policy). Every wrapper checks the return code and throws {@linkcode osError}.
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

const LOADAVG = cString("/proc/loadavg");
const loadBuf = new Uint8Array(128);

/**
 * How many threads are runnable right now, system-wide, this one included (Linux: the
 * "running" of "running/total" in `/proc/loadavg`), or undefined where that cannot be read. Read
 * with libc (no read permission needed; ~10 µs).
 */
export function runnableThreads(): number | undefined {
  const fd = libc().open(LOADAVG, OS.O_RDONLY | OS.O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const n = Number(libc().read(fd, loadBuf, BigInt(loadBuf.length)));
    // "0.52 0.58 0.59 2/345 1234": the count before the slash.
    let at = loadBuf.subarray(0, Math.max(n, 0)).indexOf(0x2f);
    if (at <= 0) return undefined;
    let value = 0;
    for (let scale = 1; at-- > 0 && loadBuf[at] >= 0x30 && loadBuf[at] <= 0x39; scale *= 10) {
      value += (loadBuf[at] - 0x30) * scale;
    }
    return value;
  } finally {
    libc().close(fd);
  }
}

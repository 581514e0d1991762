/**
 * Starting and joining a process that does nothing, against CPython's multiprocessing and the
 * fork+exec floor in C.
 *
 * @module
 */
import { Process } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { median, runPython, start, timeMs } from "../_measure.ts";
import { empty } from "./_targets.ts";

const TARGETS = new URL("./_targets.ts", import.meta.url);
/** Processes started per measurement (the median is reported). */
const COUNT = 10;

/** One `start()` + `join()` of a process running the empty target, in ms. */
export async function startJoinOnce(): Promise<number> {
  const p = new Process({ target: empty, module: TARGETS });
  try {
    return await timeMs(async () => {
      await p.start();
      await p.join();
    });
  } finally {
    if (p.exitCode === null && p.pid !== undefined) {
      p.kill();
      await p.join(5000);
    }
    p.close();
  }
}

/** Median ms of {@linkcode COUNT} start+join, after one warm-up (which also starts the tracker). */
export async function startJoinMs(count = COUNT): Promise<number> {
  await startJoinOnce();
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await startJoinOnce());
  return median(times);
}

const EMPTY_FILE = new URL("./_empty.ts", import.meta.url);

/** One `deno run` of an empty file, to its end. */
export async function denoRunEmpty(): Promise<void> {
  const args = ["run", "--no-config", EMPTY_FILE.pathname];
  const { success } = await start(Deno.execPath(), args, { stdout: "null", stderr: "null" }).status;
  if (!success) throw new Error("deno run of an empty file failed");
}

/** Median ms of `deno run` of an empty file: the floor for any Deno child. */
export async function denoRunEmptyMs(count = 5): Promise<number> {
  const once = () => timeMs(denoRunEmpty);
  await once();
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await once());
  return median(times);
}

// The target is a builtin (`int()` returns 0): under `python3 -c` the child cannot import a
// function defined in __main__. Importing one from a real file would cost slightly more.
const pythonStartJoin = (method: "spawn" | "fork") => `
import multiprocessing as mp, statistics, time
ctx = mp.get_context("${method}")
def once():
    t0 = time.perf_counter()
    p = ctx.Process(target=int)
    p.start()
    p.join()
    return (time.perf_counter() - t0) * 1e3
once()
print(statistics.median([once() for _ in range(${COUNT})]))
`;

const C_FORK_EXEC = `
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  enum { N = 21 };
  double t[N];
  for (int i = -1; i < N; i++) {
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
      execl("/bin/true", "true", (char *)NULL);
      _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 1; }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "/bin/true failed\\n"); return 1; }
    if (i >= 0) t[i] = now_ms() - t0;
  }
  qsort(t, N, sizeof t[0], cmp);
  printf("%.4f\\n", t[N / 2]);
  return 0;
}
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Process start+join (empty target)",
    unit: "ms",
    deno: () => startJoinMs(),
    python: pythonStartJoin("spawn"),
    c: C_FORK_EXEC,
    extra: {
      "CPython fork": () => runPython(pythonStartJoin("fork")),
      "deno run (empty file)": () => denoRunEmptyMs(),
    },
    goal: { vs: "python", ratio: 0.7 },
  },
];

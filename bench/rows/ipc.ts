/**
 * Pipes and queues between two processes (src/connection.ts, src/queue.ts) against CPython's
 * `multiprocessing` (fork context, so its targets can live in `python3 -c`) and the C floor
 * (plain pipes, fork, blocking read/write).
 *
 * - Round trip: a `{ id, name }` object sent to a child that echoes it (duplex Pipe).
 * - Connection hand-over: a fresh Pipe end sent inside a message to a child, which receives it
 *   (its fd comes from this process's fd sharer, src/_fd_sharer.ts), closes it and answers.
 * - Queue one way: 100 000 `{ i, s }` objects put by a child, got by this process, after a "go".
 * - sendBytes: 256 messages of 1 MiB from a child, received with `recvBytes` (duplex Pipe).
 * - Streaming: 1 GiB in 1 MiB `Uint8Array`s through a `Queue(16)`, from a child; the cell is the
 *   larger peak RSS (VmHWM) of the two processes, measured in a program of its own
 *   (`_ipc_stream.ts`) so that the harness's own memory does not count.
 *
 * The C floor blocks in `read()`; on an idle machine its wake-ups take a few µs, on a busy one
 * tens of µs, so that column moves more than the others between runs.
 *
 * @module
 */
import { type Connection, Pipe, Process, Queue } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { BUSY, busyCores, lastNumber, run } from "../_measure.ts";
import { echo, produceSmall, sendBig, takeConnections } from "./_ipc_targets.ts";

const targets = new URL("./_ipc_targets.ts", import.meta.url);
const MIB = 2 ** 20;

async function stop(p: Process): Promise<void> {
  if (p.isAlive()) p.kill();
  await p.join(5000);
}

/** µs per round trip of a small object to a child that echoes it. */
export async function roundTripUs(rounds = 5000, warmup = 500): Promise<number> {
  const [mine, theirs] = Pipe();
  const child = new Process({ target: echo, args: [theirs], module: targets });
  try {
    await child.start();
    theirs.close();
    const msg = { id: 1, name: "x" };
    for (let i = 0; i < warmup; i++) {
      await mine.send(msg);
      await mine.recv();
    }
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      await mine.send(msg);
      await mine.recv();
    }
    return ((performance.now() - t0) * 1000) / rounds;
  } finally {
    mine.close();
    theirs.close();
    await child.join(5000);
    await stop(child);
  }
}

/** µs per Connection sent inside a message to a child that receives it, closes it and answers. */
export async function handOverUs(rounds = 1000, warmup = 100): Promise<number> {
  // Typed as the child's end is: connections go out; its answers (a 1 each) are only awaited.
  const [mine, theirs] = Pipe<Connection | null>();
  const child = new Process({ target: takeConnections, args: [theirs], module: targets });
  try {
    await child.start();
    theirs.close();
    const round = async () => {
      const [x, y] = Pipe();
      await mine.send(y);
      y.close();
      await mine.recv();
      x.close();
    };
    for (let i = 0; i < warmup; i++) await round();
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) await round();
    return ((performance.now() - t0) * 1000) / rounds;
  } finally {
    mine.close();
    theirs.close();
    await child.join(5000);
    await stop(child);
  }
}

/** Thousands of small objects per second through a Queue, from a child to this process. */
export async function queueThroughputK(count = 100_000): Promise<number> {
  const q = new Queue<unknown>();
  const [go, theirs] = Pipe();
  const child = new Process({ target: produceSmall, args: [q, theirs, count], module: targets });
  try {
    await child.start();
    theirs.close();
    const t0 = performance.now();
    await go.send("go");
    let n = 0;
    while ((await q.get()) !== null) n++;
    const ms = performance.now() - t0;
    if (n !== count) throw new Error(`got ${n} of ${count} items`);
    return count / ms;
  } finally {
    go.close();
    theirs.close();
    await child.join(5000);
    await stop(child);
    q.close();
  }
}

/** GB/s of `sendBytes` messages of `size` bytes from a child, received with `recvBytes`. */
export async function sendBytesGBs(count = 256, size = MIB): Promise<number> {
  const [mine, theirs] = Pipe();
  const child = new Process({ target: sendBig, args: [theirs, count, size], module: targets });
  try {
    await child.start();
    theirs.close();
    const t0 = performance.now();
    await mine.send("go");
    for (let i = 0; i < count; i++) {
      if ((await mine.recvBytes()).length !== size) throw new Error("short message");
    }
    const seconds = (performance.now() - t0) / 1000;
    await mine.send("done");
    return (count * size) / seconds / 1e9;
  } finally {
    mine.close();
    theirs.close();
    await child.join(5000);
    await stop(child);
  }
}

/** Peak RSS (MB, the larger of the two processes) while 1 GiB streams through a Queue(16). */
export async function streamRssMb(count = 1024, size = MIB, maxsize = 16): Promise<number> {
  const program = new URL("./_ipc_stream.ts", import.meta.url).pathname;
  return lastNumber(await run(Deno.execPath(), ["run", "-A", program, `${count}`, `${size}`, `${maxsize}`]));
}

const PY_PRELUDE = `
import multiprocessing as mp, time, resource
ctx = mp.get_context("fork")
`;

export const PY_ROUND_TRIP = PY_PRELUDE + `
def echo(c, other):
    other.close()  # the fork copied the parent's end: without this, EOF never comes
    while True:
        try:
            c.send(c.recv())
        except EOFError:
            break
a, b = ctx.Pipe()
p = ctx.Process(target=echo, args=(b, a))
p.start()
b.close()
msg = {"id": 1, "name": "x"}
for _ in range(500):
    a.send(msg); a.recv()
N = 5000
t0 = time.perf_counter()
for _ in range(N):
    a.send(msg); a.recv()
dt = time.perf_counter() - t0
a.close()
p.join()
print(dt / N * 1e6)
`;

const PY_HAND_OVER = PY_PRELUDE + `
def take(c, other):
    other.close()
    while True:
        try:
            got = c.recv()
        except EOFError:
            break
        got.close()
        c.send(1)
a, b = ctx.Pipe()
p = ctx.Process(target=take, args=(b, a))
p.start()
b.close()
def round_():
    x, y = ctx.Pipe()
    a.send(y)
    y.close()
    a.recv()
    x.close()
for _ in range(100):
    round_()
N = 1000
t0 = time.perf_counter()
for _ in range(N):
    round_()
dt = time.perf_counter() - t0
a.close()
p.join()
print(dt / N * 1e6)
`;

const PY_QUEUE = PY_PRELUDE + `
N = 100000
def produce(q, go, n):
    go.recv()
    for i in range(n):
        q.put({"i": i, "s": "hello"})
    q.put(None)
q = ctx.Queue()
r, w = ctx.Pipe()
p = ctx.Process(target=produce, args=(q, r, N))
p.start()
t0 = time.perf_counter()
w.send("go")
n = 0
while q.get() is not None:
    n += 1
dt = time.perf_counter() - t0
p.join()
assert n == N
print(N / dt / 1000)
`;

const PY_SEND_BYTES = PY_PRELUDE + `
N, SIZE = 256, 1 << 20
def sender(c):
    buf = b"\\x01" * SIZE
    c.recv()
    for _ in range(N):
        c.send_bytes(buf)
    c.recv()
a, b = ctx.Pipe()
p = ctx.Process(target=sender, args=(b,))
p.start()
t0 = time.perf_counter()
a.send("go")
for _ in range(N):
    assert len(a.recv_bytes()) == SIZE
dt = time.perf_counter() - t0
a.send("done")
p.join()
print(N * SIZE / dt / 1e9)
`;

const PY_STREAM = PY_PRELUDE + `
COUNT, SIZE = 1024, 1 << 20
def stream(q):
    for i in range(COUNT):
        q.put(bytes([i & 0xff]) * SIZE)
q = ctx.Queue(16)
p = ctx.Process(target=stream, args=(q,))
p.start()
for i in range(COUNT):
    assert len(q.get()) == SIZE
p.join()
mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(max(mine, child) / 1024)
`;

const C_PRELUDE = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void full_read(int fd, char *buf, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, buf, n);
    if (r <= 0) { perror("read"); exit(1); }
    buf += r; n -= (size_t)r;
  }
}

static void full_write(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w <= 0) { perror("write"); exit(1); }
    buf += w; n -= (size_t)w;
  }
}
`;

const C_ROUND_TRIP = C_PRELUDE + `
int main(void) {
  int there[2], back[2];
  if (pipe(there) || pipe(back)) { perror("pipe"); return 1; }
  enum { WARMUP = 500, N = 5000 };
  char msg[8] = "ping!!!";
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < WARMUP + N; i++) { full_read(there[0], msg, 8); full_write(back[1], msg, 8); }
    _exit(0);
  }
  for (int i = 0; i < WARMUP; i++) { full_write(there[1], msg, 8); full_read(back[0], msg, 8); }
  double t0 = now_s();
  for (int i = 0; i < N; i++) { full_write(there[1], msg, 8); full_read(back[0], msg, 8); }
  double dt = now_s() - t0;
  waitpid(pid, NULL, 0);
  printf("%.3f\\n", dt / N * 1e6);
  return 0;
}
`;

const C_QUEUE = C_PRELUDE + `
int main(void) {
  int fds[2];
  if (pipe(fds)) { perror("pipe"); return 1; }
  enum { N = 100000, SIZE = 16 };
  char msg[SIZE];
  memset(msg, 1, SIZE);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < N; i++) full_write(fds[1], msg, SIZE);
    _exit(0);
  }
  double t0 = now_s();
  for (int i = 0; i < N; i++) full_read(fds[0], msg, SIZE);
  double dt = now_s() - t0;
  waitpid(pid, NULL, 0);
  printf("%.1f\\n", N / dt / 1000);
  return 0;
}
`;

const C_SEND_BYTES = C_PRELUDE + `
int main(void) {
  int fds[2];
  if (pipe(fds)) { perror("pipe"); return 1; }
  enum { N = 256, SIZE = 1 << 20 };
  char *buf = malloc(SIZE);
  memset(buf, 1, SIZE);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < N; i++) full_write(fds[1], buf, SIZE);
    _exit(0);
  }
  double t0 = now_s();
  for (int i = 0; i < N; i++) full_read(fds[0], buf, SIZE);
  double dt = now_s() - t0;
  waitpid(pid, NULL, 0);
  printf("%.3f\\n", (double)N * SIZE / dt / 1e9);
  return 0;
}
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Connection round trip, small object, 2 processes",
    unit: "µs",
    deno: () => roundTripUs(),
    python: PY_ROUND_TRIP,
    c: C_ROUND_TRIP,
    goal: { vs: "python", ratio: 0.75 },
  },
  {
    // The same, measured while every core is taken by a spinning process: a waiter that spins
    // then takes the CPU its peer needs (src/_wait.ts, the spin policy).
    name: `Connection round trip, small object, 2 processes, ${BUSY} cores busy (spinning processes)`,
    unit: "µs",
    deno: () => roundTripUs(),
    python: PY_ROUND_TRIP,
    c: C_ROUND_TRIP,
    goal: { vs: "python", ratio: 1 },
    around: busyCores,
  },
  {
    name: "Connection handed over inside a message to a child (send, receive, answer)",
    unit: "µs/op",
    deno: () => handOverUs(),
    python: PY_HAND_OVER,
  },
  {
    name: "Queue one way, 100 000 small objects, process → process",
    unit: "k msg/s",
    higherIsBetter: true,
    deno: () => queueThroughputK(),
    python: PY_QUEUE,
    c: C_QUEUE,
    goal: { vs: "python", ratio: 3 },
  },
  {
    name: "sendBytes 1 MiB messages, process → process",
    unit: "GB/s",
    higherIsBetter: true,
    deno: () => sendBytesGBs(),
    python: PY_SEND_BYTES,
    c: C_SEND_BYTES,
    goal: { vs: "python", ratio: 2 },
  },
  {
    name: "Queue(16) streaming 1 GiB in 1 MiB items: peak RSS of either process",
    unit: "MB",
    deno: () => streamRssMb(),
    python: PY_STREAM,
    extra: { "limit": () => Promise.resolve(100) },
    goal: { vs: "limit", ratio: 1 },
  },
];

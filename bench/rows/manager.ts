/**
 * Manager rows, each against CPython's manager in the same run: a dict proxy's `set` round trip
 * (client → server process → client), a served lock's acquire+release over TCP on loopback, and
 * the server's memory growth over 10 000 short-lived dicts made and dropped (reference counting),
 * after as many to warm up.
 *
 * @module
 */
import { Manager } from "../../mod.ts";
import type { CompareRow } from "../_row.ts";
import { timeMs } from "../_measure.ts";

const SETS = 5000;
const LOCKS = 2000;
const DICTS = 10_000;

/** The RSS of this process's newest child that is not the resource tracker (the server), in MB. */
function serverRssMb(): number {
  const out = new TextDecoder().decode(
    new Deno.Command("pgrep", { args: ["-P", String(Deno.pid)], stdout: "piped" }).outputSync().stdout,
  );
  for (const pid of out.split("\n").filter(Boolean).reverse()) {
    try {
      if (Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("_tracker_main")) continue;
      const kb = Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
      return kb / 1024;
    } catch {
      // ended meanwhile
    }
  }
  throw new Error("Cannot find the manager's server process");
}

const PY_RSS = `
def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
`;

/** The rows of this module. */
export const rows: CompareRow[] = [
  {
    name: "Manager dict set round trip",
    unit: "µs/op",
    deno: async () => {
      await using manager = await Manager.start();
      const d = await manager.dict<number>();
      for (let i = 0; i < 500; i++) await d.set("x", i); // warm both sides
      const t = await timeMs(async () => {
        for (let i = 0; i < SETS; i++) await d.set("x", i);
      });
      return (t * 1000) / SETS;
    },
    python: `
import multiprocessing as mp, time
if __name__ == "__main__":
    with mp.get_context("spawn").Manager() as m:
        d = m.dict()
        for i in range(500):
            d["x"] = i
        t0 = time.perf_counter()
        for i in range(${SETS}):
            d["x"] = i
        print((time.perf_counter() - t0) * 1e6 / ${SETS})
`,
    goal: { vs: "python", ratio: 0.7 },
  },
  {
    name: "Manager lock acquire+release, TCP loopback",
    unit: "µs/op",
    deno: async () => {
      await using manager = await Manager.start({ address: { hostname: "127.0.0.1", port: 0 } });
      const lock = await manager.lock();
      for (let i = 0; i < 200; i++) {
        await lock.acquire();
        await lock.release();
      }
      const t = await timeMs(async () => {
        for (let i = 0; i < LOCKS; i++) {
          await lock.acquire();
          await lock.release();
        }
      });
      return (t * 1000) / LOCKS;
    },
    python: `
import multiprocessing as mp, time
from multiprocessing.managers import SyncManager
if __name__ == "__main__":
    m = SyncManager(address=("127.0.0.1", 0), ctx=mp.get_context("spawn"))
    m.start()
    l = m.Lock()
    for i in range(200):
        l.acquire(); l.release()
    t0 = time.perf_counter()
    for i in range(${LOCKS}):
        l.acquire(); l.release()
    print((time.perf_counter() - t0) * 1e6 / ${LOCKS})
    m.shutdown()
`,
  },
  {
    name: `Manager server RSS growth over ${DICTS} dicts made and dropped (after ${DICTS} to warm up)`,
    unit: "MB",
    deno: async () => {
      await using manager = await Manager.start();
      // The first ones grow the heap to its working size (about 15 MB, then flat: measured up to
      // 50 000); what is measured is the growth after that, i.e. what the dicts leave behind.
      for (let i = 0; i < DICTS; i++) (await manager.dict({ i })).close();
      const before = serverRssMb();
      for (let i = 0; i < DICTS; i++) (await manager.dict({ i })).close();
      await manager.names(); // the last decref has been read
      return serverRssMb() - before;
    },
    python: `
import multiprocessing as mp
${PY_RSS}
if __name__ == "__main__":
    with mp.get_context("spawn").Manager() as m:
        pid = m._process.pid
        for i in range(${DICTS}):
            d = m.dict({"i": i}); del d
        before = rss_mb(pid)
        for i in range(${DICTS}):
            d = m.dict({"i": i}); del d
        print(rss_mb(pid) - before)
`,
  },
];

/**
 * The ticket race: three processes each try to buy the last ticket from a JSON file holding
 * {"count": 1}. Each reads the count, thinks a moment, and writes count - 1 if it saw one left.
 * Without a lock all three see a ticket and all three "succeed"; with the lock around the
 * read-modify-write exactly one does.
 *
 * A pause between the read and the write makes the race likely, not certain: on a busy machine
 * one buyer may write before another has read. So the unlocked buyers wait at a Barrier until
 * all three have read; that is the race a missing lock allows, made to happen on every run.
 *
 * Run: deno task example:ticket_race
 */
import { Barrier, Event, Lock, Process, Semaphore } from "@mp/multiprocessing";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function tryToBuy(path: string, name: string, think: () => Promise<unknown>): Promise<boolean> {
  const { count } = JSON.parse(await Deno.readTextFile(path));
  await think(); // the race window
  if (count < 1) {
    console.log(`  ${name}: sold out`);
    return false;
  }
  await Deno.writeTextFile(path, JSON.stringify({ count: count - 1 }));
  console.log(`  ${name}: bought a ticket (saw ${count} left)`);
  return true;
}

/**
 * Buys without a lock, thinking until all three buyers have read the count; records a success
 * by releasing `bought` once.
 */
export async function buy(allRead: Barrier, path: string, name: string, bought: Semaphore): Promise<void> {
  if (await tryToBuy(path, name, () => allRead.wait())) bought.release();
}

/** Buys holding `lock` for the whole read-modify-write. */
export async function buyWithLock(
  go: Event,
  lock: Lock,
  path: string,
  name: string,
  bought: Semaphore,
): Promise<void> {
  await go.wait();
  using _ = await lock.hold();
  if (await tryToBuy(path, name, () => sleep(50))) bought.release();
}

async function race(withLock: boolean): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "ticket-race-" });
  const path = `${dir}/tickets.json`;
  try {
    await Deno.writeTextFile(path, JSON.stringify({ count: 1 }));
    using bought = new Semaphore(0);
    using lock = new Lock();
    using go = new Event(); // start all three together, so that they really race
    using allRead = new Barrier(3);
    const buyers = ["alice", "bob", "carol"].map((name) =>
      withLock
        ? new Process({ target: buyWithLock, args: [go, lock, path, name, bought] })
        : new Process({ target: buy, args: [allRead, path, name, bought] })
    );
    await Promise.all(buyers.map((p) => p.start()));
    go.set();
    await Promise.all(buyers.map((p) => p.join()));
    return bought.getValue();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  console.log('Without a lock, three buyers and {"count": 1}:');
  const unlocked = await race(false);
  console.log(`=> ${unlocked} tickets sold (one existed)\n`);
  console.log("With a Lock around read-modify-write:");
  const locked = await race(true);
  console.log(`=> ${locked} ticket sold`);
  if (locked !== 1) {
    console.error("The lock should let exactly one buyer succeed");
    Deno.exit(1);
  }
}

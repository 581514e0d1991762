/**
 * The shared part of a queue: the pipe, the control block and its layout, the count of items,
 * and the producer records that let a SIGKILLed producer's places be given back.
 *
 * **The pipe carries whole frames.** Each item is a frame (`_frames.ts`: a header, then the
 * body) whose body is `[u8 tag][payload]`; in the pipe the header is always the 4-byte one. Writers
 * write whole frames in writes of at most `PIPE_BUF` (4096) bytes, which the kernel makes atomic:
 * frames from different processes never interleave, a writer killed mid-way cannot leave half a
 * frame behind, and so the pipe only ever holds whole frames. The shared read-ahead is as large
 * as the pipe (64 KiB), so one `read()` empties it (see `_queue_reader.ts`).
 *
 * **The count is one word** (`STATE`): the number of items in the queue times 2, plus the parity
 * bit that says which of the two reader records is current. A producer takes a place with one
 * compare-and-swap on it; a reader publishes its new state *and* gives the item's place back with
 * one compare-and-swap on it. So a reader killed at any point has either taken the item (and given
 * its place back) or not: no place leaks, and no item is taken twice.
 *
 * **Producer records** (pid, pending): the places a process took for items still in its own
 * buffer. The buffer of a process killed before it reached the pipe is lost (nothing can save it),
 * but its places come back: whoever finds the record of a dead process gives them back (a waiting
 * `put()`, `qsize()`, `JoinableQueue.join()`). A record and the count are two words, and a write
 * to the pipe is a system call, so two steps of a producer cannot be one store: a producer records
 * a place before it takes it, and writes a chunk before it records that. Killed between the two,
 * it has places given back that it did not hold (the count is low by at most one chunk's items,
 * and a bounded queue may hold that many more) until the queue next runs empty, when the count is
 * exact again; it never leaks a place, and no item is lost or repeated because of it.
 *
 * @module
 */
import {
  close as closeFd,
  kill,
  mapSharedMemory,
  NamedSemaphore,
  OS,
  pipe,
  processAlive,
  setNonBlocking,
  type SharedMapping,
} from "../native/mod.ts";
import { createNamed, makeTracked, type Named, own, releaseNamed } from "./_resource.ts";
import { Lock } from "./lock.ts";

/** Writes up to this size are atomic on a pipe (POSIX PIPE_BUF, in native/constants.ts). */
export const PIPE_BUF: number = OS.PIPE_BUF;
export const TAG_ITEM = 0;
/** Payload: f64 length of the segment, then its name (UTF-8). The segment holds item frames. */
export const TAG_SEGMENT = 1;
/** Payload: the bytes of a plain `Uint8Array` item, sent as they are (no serialization). */
export const TAG_RAW = 2;
/** The shared read-ahead: as large as a pipe's capacity (16 pages), so one read empties the pipe. */
export const FRONT_CAP = 16 * 4096;
/** The most items a queue can count (30 bits: the count shares its word with a parity bit). */
export const MAX_ITEMS = 2 ** 30 - 1;

// i32 words of the control block.
/** Items in the queue × 2 + the index (0/1) of the current reader record. */
export const W_STATE = 0;
/** JoinableQueue's unfinished tasks. */
export const W_UNFINISHED = 1;
/** Producers sleeping on the wake-up semaphore until a place frees. */
export const W_PUT_WAITERS = 2;
/** Processes sleeping in JoinableQueue.join() on the wake-up semaphore. */
export const W_JOIN_WAITERS = 3;
/** 1 for a JoinableQueue: the places of a dead producer's lost items are unfinished tasks too. */
export const W_JOINABLE = 4;
/** Two reader records of R_SIZE bytes (see `_queue_reader.ts`). */
export const B_RECORDS = 64;
export const R_SIZE = 64;
/** Producer records: (pid, pending) i32 pairs. */
export const W_PRODUCERS = 256 / 4;
export const N_PRODUCERS = 64;
/** The shared read-ahead. */
export const B_FRONT = 1024;
const CONTROL_SIZE = B_FRONT + FRONT_CAP;

/** The shared part of one queue, as this process sees it. */
export interface Shared {
  readFd: number;
  writeFd: number;
  control: SharedMapping;
  controlName: string;
  /** Wake-up channel: posted when a place frees while producers wait (and at taskDone()). */
  wake: NamedSemaphore;
  wakeName: string;
  maxsize: number;
  rlock: Lock;
  wlock: Lock;
  /** True in the process that created the queue: it removes the names at close. */
  creator: boolean;
}

/** What a revived queue opens (the two fds travel with it). */
export interface SharedState {
  readFd: number;
  writeFd: number;
  controlName: string;
  slotsName: string;
  maxsize: number;
  locks: { rlock: Lock; wlock: Lock };
}

export function createShared(maxsize: number): Shared {
  return createNamed("q", (controlName) => makeShared(controlName, maxsize));
}

function makeShared(controlName: string, maxsize: number): Shared {
  const wakeName = controlName + "s";
  const [readFd, writeFd] = pipe();
  let control: SharedMapping | undefined;
  let wake: NamedSemaphore | undefined;
  const made: Named[] = [];
  try {
    setNonBlocking(readFd, true);
    setNonBlocking(writeFd, true);
    const shm: Named = { kind: "shm", name: controlName };
    control = makeTracked(shm, () => mapSharedMemory(controlName, true, CONTROL_SIZE));
    made.push(shm);
    own(shm);
    const sem: Named = { kind: "sem", name: wakeName };
    wake = makeTracked(sem, () => NamedSemaphore.create(wakeName, 0));
    made.push(sem);
    own(sem);
    return {
      readFd,
      writeFd,
      control,
      controlName,
      wake,
      wakeName,
      maxsize: maxsize === 0 ? MAX_ITEMS : maxsize,
      rlock: new Lock(),
      wlock: new Lock(),
      creator: true,
    };
  } catch (e) {
    closeFd(readFd);
    closeFd(writeFd);
    control?.unmap();
    wake?.close();
    releaseNamed(made); // only what we made: a name that was taken is someone else's
    throw e;
  }
}

export function reviveShared(st: SharedState): Shared {
  return {
    readFd: st.readFd,
    writeFd: st.writeFd,
    control: mapSharedMemory(st.controlName, false),
    controlName: st.controlName,
    wake: NamedSemaphore.open(st.slotsName),
    wakeName: st.slotsName,
    maxsize: st.maxsize,
    rlock: st.locks.rlock,
    wlock: st.locks.wlock,
    creator: false,
  };
}

/** Closes this process's handles on a queue's shared part; its creator also removes the names. */
export function releaseShared(s: Shared): void {
  closeFd(s.readFd);
  closeFd(s.writeFd);
  s.control.unmap();
  s.wake.close();
  s.rlock.close();
  s.wlock.close();
  if (s.creator) releaseNamed([{ kind: "shm", name: s.controlName }, { kind: "sem", name: s.wakeName }]);
}

// ---------------------------------------------------------------------------------------------
// The count

/** Takes one place if the queue holds fewer than `maxsize` items (one CAS). */
export function tryTakePlace(w: Int32Array, maxsize: number): boolean {
  for (;;) {
    const s = Atomics.load(w, W_STATE);
    if (s >>> 1 >= maxsize) return false;
    if (Atomics.compareExchange(w, W_STATE, s, s + 2) === s) return true;
  }
}

/** Gives `n` places back (never below zero), keeping the parity bit. */
export function givePlaces(w: Int32Array, n: number): void {
  for (;;) {
    const s = Atomics.load(w, W_STATE);
    const used = Math.max(0, (s >>> 1) - n);
    if (Atomics.compareExchange(w, W_STATE, s, used * 2 + (s & 1)) === s) return;
  }
}

/** Items in the queue. */
export function itemCount(w: Int32Array): number {
  return Atomics.load(w, W_STATE) >>> 1;
}

/** Wakes producers waiting for a place, if any (a post is a hint: they look again). */
export function wakePutters(s: Shared, w: Int32Array): void {
  if (Atomics.load(w, W_PUT_WAITERS) > 0) s.wake.post();
}

// ---------------------------------------------------------------------------------------------
// Producer records

const PID = Deno.pid;

/** This process's record index in `w` (-1: the table is full; then nothing is recorded). */
export function claimProducer(w: Int32Array, s: Shared): number {
  for (let i = 0; i < N_PRODUCERS; i++) {
    if (Atomics.load(w, W_PRODUCERS + 2 * i) === PID) return i;
  }
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < N_PRODUCERS; i++) {
      if (Atomics.compareExchange(w, W_PRODUCERS + 2 * i, 0, PID) === 0) return i;
    }
    reclaimDeadProducers(w, s, true);
  }
  return -1;
}

/** Adds `n` (may be negative) to the places record `i` holds for items not yet in the pipe. */
export function notePending(w: Int32Array, i: number, n: number): void {
  if (i >= 0) Atomics.add(w, W_PRODUCERS + 2 * i + 1, n);
}

/** Frees this process's record `i` if it holds no place. */
export function leaveProducer(w: Int32Array, i: number): void {
  if (i >= 0 && Atomics.load(w, W_PRODUCERS + 2 * i + 1) === 0) {
    Atomics.compareExchange(w, W_PRODUCERS + 2 * i, PID, 0);
  }
}

/**
 * Gives back the places of producers that died with items in their buffer; `all` also frees the
 * records of dead producers that held none. Returns how many places came back.
 */
export function reclaimDeadProducers(w: Int32Array, s: Shared, all = false): number {
  let total = 0;
  for (let i = 0; i < N_PRODUCERS; i++) {
    const at = W_PRODUCERS + 2 * i;
    const pid = Atomics.load(w, at);
    if (pid <= 0 || pid === PID) continue;
    if (!all && Atomics.load(w, at + 1) === 0) continue;
    if (processAlive(pid)) continue;
    // -1 marks the record busy, so that only one process gives its places back.
    if (Atomics.compareExchange(w, at, pid, -1) !== pid) continue;
    total += Atomics.exchange(w, at + 1, 0);
    Atomics.store(w, at, 0);
  }
  if (total > 0) {
    givePlaces(w, total);
    if (Atomics.load(w, W_JOINABLE) === 1) Atomics.sub(w, W_UNFINISHED, total);
    wakePutters(s, w);
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Fault injection (tests only)

let crashStep: string | null = null;
let crashCount = 0;

/**
 * @internal Tests only: SIGKILL this process the `nth` time the queue code reaches `step` (a
 * name passed to {@linkcode crashPoint}); null turns it off.
 */
export function crashAt(step: string | null, nth = 1): void {
  crashStep = step;
  crashCount = nth;
}

/** A point where a test may kill this process (see {@linkcode crashAt}). */
export function crashPoint(step: string): void {
  if (crashStep === step && --crashCount === 0) kill(PID, "SIGKILL");
}

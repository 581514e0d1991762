/**
 * The table of fds in flight that the program's thread and the fd sharer's thread share (a
 * SharedArrayBuffer). One row per fd: `[state, fd, token0..3]`. Only the program's thread fills
 * a free row (FREE → HELD); either thread empties one by winning the HELD → TAKING exchange, so
 * that an fd is handed over (or closed) once.
 *
 * @module
 */

export const ROWS = 4096;
const WORDS = 6;
/** After the rows: set to 1 to stop the sharer's thread; set to 1 by it when it has stopped. */
export const STOP = ROWS * WORDS;
export const STOPPED = STOP + 1;
const FREE = 0;
const HELD = 1;
const TAKING = 2;
/** A request on the socket: the row (u32) and the 128-bit token. */
export const REQUEST_BYTES = 20;

export function newTable(): Int32Array {
  return new Int32Array(new SharedArrayBuffer((ROWS * WORDS + 2) * 4));
}

/** Fills a free row with `fd` and a fresh token; returns the row, or -1 when all are in use. */
export function put(table: Int32Array, fd: number, token: Int32Array, from: number): number {
  for (let i = 0; i < ROWS; i++) {
    const row = (from + i) % ROWS;
    if (Atomics.load(table, row * WORDS) !== FREE) continue;
    table[row * WORDS + 1] = fd;
    table.set(token, row * WORDS + 2);
    Atomics.store(table, row * WORDS, HELD);
    return row;
  }
  return -1;
}

/**
 * Takes the fd of `row` if it is held under `token`: returns it (the row stays TAKING until
 * {@linkcode release}), or -1.
 */
export function claim(table: Int32Array, row: number, token: Int32Array): number {
  if (!(row >= 0 && row < ROWS)) return -1;
  const at = row * WORDS;
  if (Atomics.load(table, at) !== HELD) return -1;
  for (let k = 0; k < 4; k++) if (table[at + 2 + k] !== token[k]) return -1;
  if (Atomics.compareExchange(table, at, HELD, TAKING) !== HELD) return -1;
  return table[at + 1];
}

/** Frees a row taken by {@linkcode claim}. */
export function release(table: Int32Array, row: number): void {
  Atomics.store(table, row * WORDS, FREE);
}

/** Takes every fd still held (the sender is ending) and passes each to `close`. */
export function drain(table: Int32Array, close: (fd: number) => void): void {
  for (let row = 0; row < ROWS; row++) {
    const at = row * WORDS;
    if (Atomics.compareExchange(table, at, HELD, TAKING) !== HELD) continue;
    close(table[at + 1]);
    release(table, row);
  }
}

/** How many rows hold an fd. */
export function heldRows(table: Int32Array): number {
  let n = 0;
  for (let row = 0; row < ROWS; row++) if (Atomics.load(table, row * WORDS) !== FREE) n++;
  return n;
}

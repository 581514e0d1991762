/**
 * The fd sharer's thread (see `_fd_sharer.ts`): answers the receivers that connect to this
 * process's abstract socket, whatever the program's own thread is doing (a pool worker, for one,
 * blocks in a read between tasks). It blocks in poll() and touches nothing but the socket, the
 * table it shares with the program's thread, and the fds that the table lists.
 *
 * @module
 */
import { acceptOne, close as closeFd, OS, pollFds, read as readFd, sendWithFd } from "../native/mod.ts";
import { claim, release, REQUEST_BYTES, STOP, STOPPED } from "./_fd_sharer_table.ts";

/** How long to wait for a request from a client that connected, in ms. */
const REQUEST_WAIT_MS = 1000;

/**
 * Answers one request on `client`; `claimed.row` is the table row it took (-1 for none), which the
 * caller releases once `client` is closed too, so that a free row means nothing of that hand-over
 * is open any more (`heldCount()` in tests counts on it).
 */
function answer(client: number, table: Int32Array, claimed: { row: number }): void {
  const buf = new Uint8Array(REQUEST_BYTES);
  let got = 0;
  while (got < REQUEST_BYTES) {
    if (pollFds([client], OS.POLLIN, REQUEST_WAIT_MS).length === 0) return;
    const n = readFd(client, buf.subarray(got));
    if (n <= 0) return;
    got += n;
  }
  const words = new Int32Array(buf.buffer);
  // The token is spent whatever happens next: the message that carried it was received.
  const fd = claim(table, words[0], words.subarray(1));
  if (fd >= 0) claimed.row = words[0];
  try {
    sendWithFd(client, new Uint8Array([fd < 0 ? 0 : 1]), fd);
  } finally {
    if (fd >= 0) closeFd(fd);
  }
}

const scope = self as unknown as { onmessage: ((e: MessageEvent) => void) | null };
scope.onmessage = (e: MessageEvent<{ listener: number; table: SharedArrayBuffer }>) => {
  scope.onmessage = null;
  const { listener } = e.data;
  const table = new Int32Array(e.data.table);
  for (;;) {
    pollFds([listener], OS.POLLIN, -1);
    if (Atomics.load(table, STOP) !== 0) {
      // The sender is ending (see stop() in _fd_sharer.ts): it closes the socket and the fds.
      Atomics.store(table, STOPPED, 1);
      Atomics.notify(table, STOPPED);
      self.close();
      return;
    }
    for (;;) {
      const client = acceptOne(listener);
      if (client < 0) break; // none left (EAGAIN), or one that gave up meanwhile
      const claimed = { row: -1 };
      try {
        answer(client, table, claimed);
      } catch {
        // a client that misbehaved or died: its request is dropped
      } finally {
        closeFd(client);
        if (claimed.row >= 0) release(table, claimed.row);
      }
    }
  }
};

/**
 * Safe, typed wrappers over libc, re-exported from one entry point. Every wrapper checks the
 * return code and throws through {@linkcode osError} (or the matching `Deno.errors` class) naming the
 * syscall and errno. Raw pointers stay inside `native/`.
 *
 * - `constants.ts`: the OS-specific numbers (flags, errno and signal numbers, limits);
 * - `libc.ts`: the symbol table and its one `Deno.dlopen`;
 * - `errors.ts`: errno → error;
 * - `proc.ts`: process ids, signals, liveness, waiting for a child;
 * - `fd.ts`: pipes, socket pairs, fd flags, read/write/poll;
 * - `socket.ts`: stream sockets a client connects itself (Unix path, IPv4/IPv6), send, a set of fds polled at once;
 * - `semaphore.ts`: POSIX named semaphores;
 * - `process_lock.ts`: a lock shared by the threads of this process (an abstract socket name);
 * - `shm.ts`: POSIX shared memory and the IPC name check;
 * - `v8.ts`: the probe of Deno's internal V8 serializer.
 *
 * @module
 */
export { OS } from "./constants.ts";
export { osError, type OsErrorInfo } from "./errors.ts";
export {
  type CpuTurns,
  cpuTurns,
  getpid,
  getppid,
  kill,
  newSession,
  processAlive,
  setParentDeathSignal,
  signalNumber,
  waitForChildExit,
  yieldCpu,
} from "./proc.ts";
export {
  close,
  closeOnExecFrom,
  dupFd,
  fileExists,
  pipe,
  pollFds,
  pollFdsAsync,
  read,
  readFileRaw,
  setInheritable,
  setNonBlocking,
  setSendBufferSize,
  socketpair,
  write,
  writeAll,
} from "./fd.ts";
export {
  acceptSocket,
  connectResult,
  connectSocket,
  listenSocket,
  PollSet,
  send,
  shutdownSocket,
  type SocketAddress,
  socketPort,
} from "./socket.ts";
export { NamedSemaphore } from "./semaphore.ts";
export { ProcessLock } from "./process_lock.ts";
export { mapSharedMemory, type SharedMapping, unlinkSharedMemory } from "./shm.ts";
export { fastSerializer, type Serializer } from "./v8.ts";
export {
  acceptOne,
  connectAbstract,
  CONNECTION_REFUSED,
  listenAbstract,
  recvWithFd,
  sendWithFd,
  stopListening,
} from "./scm.ts";

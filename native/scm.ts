/**
 * Handing a file descriptor to another process: `SCM_RIGHTS` over an abstract Unix socket
 * (CPython: `resource_sharer.py` + `reduction.sendfds/recvfds`).
 *
 * The mechanism (the policy lives in `src/_fd_sharer.ts`): a process that puts an fd inside a
 * message keeps a close-on-exec duplicate of it and listens on an *abstract* Unix stream socket
 * (a name in the kernel, no file to clean up: it disappears when the process closes it or dies).
 * The message carries the socket's name and a random 128-bit token. The receiver connects, writes
 * the token, and gets back one status byte with the fd attached as `SCM_RIGHTS` ancillary data
 * (received with `MSG_CMSG_CLOEXEC`, so it is close-on-exec from the start). The sender then
 * closes its duplicate. A thread of the sender (a Worker blocked in poll()) answers, so a sender
 * whose own thread is busy still hands over. Every fd made here is close-on-exec, so
 * `Deno.Command` children inherit none of them.
 *
 * The EOF rule that follows: an end inside a message is open (the sender's duplicate) until a
 * receiver takes it or the sender ends; the kernel drops an fd in flight on a socket whose
 * receiver dies before `recvmsg()`. So once sender and receiver are gone, nothing holds a copy.
 * The socket's name is random and each fd needs its 128-bit token, which only the message holds.
 *
 * The symbols are in `libc.ts`, with the rest of the table. Failures come back as `-errno` (the caller turns them into errors with `osError`), so that this
 * file needs nothing from `mod.ts`.
 *
 * Layouts (64-bit Linux, x86_64 and aarch64 agree):
 * - `struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }`: 2 + 108 bytes; an
 *   abstract name is `sun_path[0] = 0` then the name, and the length given is 2 + 1 + its length.
 * - `struct iovec { void *base; size_t len; }`: 16 bytes.
 * - `struct msghdr { void *name; socklen_t namelen; (4 pad) struct iovec *iov; size_t iovlen;
 *   void *control; size_t controllen; int flags; }`: offsets 0, 8, 16, 24, 32, 40, 48; 56 bytes.
 * - `struct cmsghdr { size_t len; int level; int type; }` then the data: 16 bytes of header;
 *   `CMSG_LEN(4)` = 20, `CMSG_SPACE(4)` = 24.
 *
 * @module
 */
import { OS } from "./constants.ts";
import { errno, libc } from "./libc.ts";

const SCM = {
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SCM_RIGHTS: 1,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x4000_0000,
  ECONNREFUSED: 111,
  SHUT_RDWR: 2,
  SUN_PATH: 108,
  MSGHDR_SIZE: 56,
  CMSG_HEADER: 16,
  CMSG_LEN_FD: 20,
  CMSG_SPACE_FD: 24,
} as const;

/** The errno value of a connect() to a name nobody listens on (the sender is gone). */
export const CONNECTION_REFUSED = SCM.ECONNREFUSED;

/**
 * Stops a listening socket: a thread blocked in poll() on it wakes up (Linux reports it hung
 * up), and connections still waiting in its backlog are reset once it is closed.
 */
export function stopListening(listener: number): void {
  libc().shutdown(listener, SCM.SHUT_RDWR);
}

/** `struct sockaddr_un` for the abstract name `name`, and the length to give with it. */
export function abstractAddress(name: string): [Uint8Array<ArrayBuffer>, number] {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length + 1 > SCM.SUN_PATH) throw new RangeError(`Socket name too long: ${name}`);
  const addr = new Uint8Array(2 + SCM.SUN_PATH);
  new DataView(addr.buffer).setUint16(0, SCM.AF_UNIX, true);
  addr.set(bytes, 3); // sun_path[0] = 0: the abstract namespace
  return [addr, 3 + bytes.length];
}

/** A close-on-exec Unix stream socket, or `-errno`. */
export function newSocket(nonBlocking: boolean): number {
  const type = SCM.SOCK_STREAM | SCM.SOCK_CLOEXEC | (nonBlocking ? SCM.SOCK_NONBLOCK : 0);
  const fd = libc().socket(SCM.AF_UNIX, type, 0);
  return fd < 0 ? -errno() : fd;
}

function closeQuietly(fd: number): void {
  libc().close(fd);
}

/**
 * The buffers that the msghdr of the call in progress points to: a pointer inside bytes does not
 * keep an array alive, this does (until the call returns).
 */
let _pinned: unknown = null;

/**
 * A non-blocking, close-on-exec socket listening on the abstract name `name`. Returns the fd, or
 * `-errno` (EADDRINUSE if the name is taken).
 */
export function listenAbstract(name: string, backlog = 64): number {
  const fd = newSocket(true);
  if (fd < 0) return fd;
  const [addr, len] = abstractAddress(name);
  if (libc().bind(fd, addr, len) !== 0 || libc().listen(fd, backlog) !== 0) {
    const code = errno();
    closeQuietly(fd);
    return -code;
  }
  return fd;
}

/** Accepts one waiting connection (blocking, close-on-exec), or returns `-errno` (EAGAIN: none). */
export function acceptOne(listener: number): number {
  const fd = libc().accept4(listener, null, null, SCM.SOCK_CLOEXEC);
  return fd < 0 ? -errno() : fd;
}

/**
 * A blocking, close-on-exec socket connected to the abstract name `name`, or `-errno`
 * ({@linkcode CONNECTION_REFUSED}: nobody listens there any more).
 */
export function connectAbstract(name: string): number {
  const fd = newSocket(false);
  if (fd < 0) return fd;
  const [addr, len] = abstractAddress(name);
  for (;;) {
    if (libc().connect(fd, addr, len) === 0) return fd;
    const code = errno();
    if (code === OS.errno.EINTR) continue;
    closeQuietly(fd);
    return -code;
  }
}

function msghdr(data: Uint8Array<ArrayBuffer>, control: Uint8Array<ArrayBuffer> | null) {
  const iov = new BigUint64Array(2);
  iov[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data)));
  iov[1] = BigInt(data.length);
  const msg = new Uint8Array(SCM.MSGHDR_SIZE);
  const v = new DataView(msg.buffer);
  v.setBigUint64(16, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(iov))), true);
  v.setBigUint64(24, 1n, true);
  if (control) {
    v.setBigUint64(32, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(control))), true);
    v.setBigUint64(40, BigInt(control.length), true);
  }
  _pinned = [iov, data, control];
  return msg;
}

/**
 * Sends `data` (at least one byte) on a connected socket, with `fd` attached as `SCM_RIGHTS` when
 * it is not negative. Returns the bytes sent, or `-errno`. Never raises SIGPIPE.
 */
export function sendWithFd(sock: number, data: Uint8Array<ArrayBuffer>, fd: number): number {
  let control: Uint8Array<ArrayBuffer> | null = null;
  if (fd >= 0) {
    control = new Uint8Array(SCM.CMSG_SPACE_FD);
    const c = new DataView(control.buffer);
    c.setBigUint64(0, BigInt(SCM.CMSG_LEN_FD), true);
    c.setInt32(8, SCM.SOL_SOCKET, true);
    c.setInt32(12, SCM.SCM_RIGHTS, true);
    c.setInt32(SCM.CMSG_HEADER, fd, true);
  }
  const msg = msghdr(data, control);
  try {
    for (;;) {
      const n = Number(libc().sendmsg(sock, msg, SCM.MSG_NOSIGNAL));
      if (n >= 0) return n;
      const code = errno();
      if (code !== OS.errno.EINTR) return -code;
    }
  } finally {
    _pinned = null;
  }
}

/**
 * Receives into `data` on a connected socket; an fd that came along (close-on-exec) is returned
 * as `fd`, else -1. `bytes` is the count received (0: the peer closed), or `-errno`.
 */
export function recvWithFd(sock: number, data: Uint8Array<ArrayBuffer>): { bytes: number; fd: number } {
  const control = new Uint8Array(SCM.CMSG_SPACE_FD);
  const msg = msghdr(data, control);
  try {
    for (;;) {
      const n = Number(libc().recvmsg(sock, msg, SCM.MSG_CMSG_CLOEXEC));
      if (n < 0) {
        const code = errno();
        if (code === OS.errno.EINTR) continue;
        return { bytes: -code, fd: -1 };
      }
      const c = new DataView(control.buffer);
      const controlLen = Number(new DataView(msg.buffer).getBigUint64(40, true));
      const got = controlLen >= SCM.CMSG_LEN_FD && c.getInt32(8, true) === SCM.SOL_SOCKET &&
        c.getInt32(12, true) === SCM.SCM_RIGHTS;
      return { bytes: n, fd: got ? c.getInt32(SCM.CMSG_HEADER, true) : -1 };
    }
  } finally {
    _pinned = null;
  }
}

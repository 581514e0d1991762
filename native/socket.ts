/**
 * Stream sockets made with libc, for code that wants the fds themselves (a manager's client and
 * server read and write them with synchronous calls, and wait on them with `poll`): listen and
 * accept, connect to a Unix socket path or to an IPv4/IPv6 address, `send` without SIGPIPE, a
 * `poll` of many fds with their own events, a `poll` with a timeout finer than a millisecond, and
 * `shutdown`. Every socket is close-on-exec and non-blocking.
 *
 * Layouts (64-bit Linux, x86_64 and aarch64 agree):
 * - `struct sockaddr_un { sa_family_t family; char path[108]; }`;
 * - `struct sockaddr_in { sa_family_t family; in_port_t port (big-endian); struct in_addr addr;
 *   char zero[8]; }`: 16 bytes;
 * - `struct sockaddr_in6 { sa_family_t family; in_port_t port; uint32_t flowinfo; struct
 *   in6_addr addr; uint32_t scope_id; }`: 28 bytes;
 *
 * @module
 */
import { OS } from "./constants.ts";
import { osError } from "./errors.ts";
import { errno, libc } from "./libc.ts";
import { pollArray } from "./fd.ts";

const NET = {
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_ERROR: 4,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  MSG_NOSIGNAL: 0x4000,
  SHUT_RDWR: 2,
  EINPROGRESS: 115,
  EADDRINUSE: 98,
  SUN_PATH: 108,
} as const;

/** Where to connect: a Unix socket path, or an IP address (4 or 16 bytes) and a port. */
export type SocketAddress = { path: string } | { ip: Uint8Array; port: number; scopeId?: number };

function sockaddr(address: SocketAddress): [Uint8Array<ArrayBuffer>, number] {
  if ("path" in address) {
    const bytes = new TextEncoder().encode(address.path);
    if (bytes.includes(0) || bytes.length >= NET.SUN_PATH) {
      throw new RangeError(
        `Invalid Unix socket path ${JSON.stringify(address.path)}: at most ${
          NET.SUN_PATH - 1
        } bytes and no NUL character`,
      );
    }
    const addr = new Uint8Array(2 + NET.SUN_PATH);
    new DataView(addr.buffer).setUint16(0, NET.AF_UNIX, true);
    addr.set(bytes, 2);
    return [addr, 2 + bytes.length + 1];
  }
  const { ip, port } = address;
  if (ip.length === 4) {
    const addr = new Uint8Array(16);
    const v = new DataView(addr.buffer);
    v.setUint16(0, NET.AF_INET, true);
    v.setUint16(2, port, false);
    addr.set(ip, 4);
    return [addr, 16];
  }
  if (ip.length !== 16) throw new RangeError(`Invalid IP address: ${ip.length} bytes, expected 4 or 16`);
  const addr = new Uint8Array(28);
  const v = new DataView(addr.buffer);
  v.setUint16(0, NET.AF_INET6, true);
  v.setUint16(2, port, false);
  addr.set(ip, 8);
  v.setUint32(24, address.scopeId ?? 0, true);
  return [addr, 28];
}

/**
 * Starts connecting a non-blocking, close-on-exec stream socket to `address`. Returns the fd and
 * whether it is connected already; when not (a TCP connect in progress), wait until the fd is
 * writable and ask {@linkcode connectResult}. Throws the `osError` of a refused or failed connect
 * (ENOENT: no such socket file: `Deno.errors.NotFound`). TCP sockets have Nagle's algorithm off.
 */
export function connectSocket(address: SocketAddress): { fd: number; connected: boolean } {
  const [addr, len] = sockaddr(address);
  const family = new DataView(addr.buffer).getUint16(0, true);
  const fd = libc().socket(family, NET.SOCK_STREAM | NET.SOCK_CLOEXEC | NET.SOCK_NONBLOCK, 0);
  if (fd < 0) throw osError("socket");
  if (family !== NET.AF_UNIX) {
    libc().setsockopt(fd, NET.IPPROTO_TCP, NET.TCP_NODELAY, new Uint8Array(new Int32Array([1]).buffer), 4);
  }
  for (;;) {
    if (libc().connect(fd, addr, len) === 0) return { fd, connected: true };
    const code = errno();
    if (code === OS.errno.EINTR) continue;
    if (code === NET.EINPROGRESS) return { fd, connected: false };
    libc().close(fd);
    throw osError("connect", code, "path" in address ? address.path : `port ${address.port}`);
  }
}

/** The outcome of a connect that was in progress: 0 when connected, else its errno. */
export function connectResult(fd: number): number {
  const value = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (libc().getsockopt(fd, NET.SOL_SOCKET, NET.SO_ERROR, value, len) !== 0) return errno();
  return value[0];
}

/**
 * Sends some of `buf` on a non-blocking socket (never raising SIGPIPE). Returns the count, or -1
 * when the socket's buffer is full (EAGAIN); throws the `osError` of a broken connection.
 */
export function send(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc().send(fd, buf, BigInt(buf.length), NET.MSG_NOSIGNAL));
    if (n >= 0) return n;
    const code = errno();
    if (code === OS.errno.EINTR) continue;
    if (code === OS.errno.EAGAIN) return -1;
    throw osError("send", code, `${fd}`);
  }
}

/** Shuts a socket down both ways: a thread waiting in poll() on it wakes up. */
export function shutdownSocket(fd: number): void {
  libc().shutdown(fd, NET.SHUT_RDWR);
}

/**
 * A non-blocking, close-on-exec socket listening on `address` (a TCP port 0 picks a free one: see
 * {@linkcode socketPort}). A Unix socket path must not exist yet. Throws `Deno.errors.AddrInUse`
 * when the address is taken, else the `osError` of the failed call.
 */
export function listenSocket(address: SocketAddress, backlog = 128): number {
  const [addr, len] = sockaddr(address);
  const family = new DataView(addr.buffer).getUint16(0, true);
  const fd = libc().socket(family, NET.SOCK_STREAM | NET.SOCK_CLOEXEC | NET.SOCK_NONBLOCK, 0);
  if (fd < 0) throw osError("socket");
  const where = "path" in address ? address.path : `port ${address.port}`;
  if (family !== NET.AF_UNIX) {
    libc().setsockopt(fd, NET.SOL_SOCKET, NET.SO_REUSEADDR, new Uint8Array(new Int32Array([1]).buffer), 4);
  }
  if (libc().bind(fd, addr, len) !== 0 || libc().listen(fd, backlog) !== 0) {
    const code = errno();
    libc().close(fd);
    if (code === NET.EADDRINUSE) throw new Deno.errors.AddrInUse(`Address already in use: ${where}`);
    throw osError("bind", code, where);
  }
  return fd;
}

/** The port a TCP socket is bound to. */
export function socketPort(fd: number): number {
  const addr = new Uint8Array(128);
  const len = new Uint32Array([addr.length]);
  if (libc().getsockname(fd, addr, len) !== 0) throw osError("getsockname", errno(), `${fd}`);
  return new DataView(addr.buffer).getUint16(2, false);
}

/**
 * Accepts one waiting connection as a non-blocking, close-on-exec socket (TCP: Nagle off).
 * Returns its fd, or `-errno` (EAGAIN: none waiting; EMFILE: out of fds).
 */
export function acceptSocket(listener: number): number {
  const fd = libc().accept4(listener, null, null, NET.SOCK_CLOEXEC | NET.SOCK_NONBLOCK);
  if (fd < 0) return -errno();
  libc().setsockopt(fd, NET.IPPROTO_TCP, NET.TCP_NODELAY, new Uint8Array(new Int32Array([1]).buffer), 4);
  return fd;
}

/**
 * A set of fds, each with the events to wait for, polled at once (`struct pollfd` array): on
 * this thread ({@linkcode PollSet.wait}) or on a worker thread ({@linkcode PollSet.waitAsync}).
 */
export class PollSet {
  #buf = new Uint8Array(8 * 16);
  #view = new DataView(this.#buf.buffer);
  #n = 0;

  /** Empties the set. */
  clear(): void {
    this.#n = 0;
  }

  /** Adds `fd` with `events`; returns its index. */
  add(fd: number, events: number): number {
    if (8 * (this.#n + 1) > this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const at = 8 * this.#n;
    this.#view.setInt32(at, fd, true);
    this.#view.setInt16(at + 4, events, true);
    this.#view.setInt16(at + 6, 0, true);
    return this.#n++;
  }

  /** How many fds are in the set. */
  get size(): number {
    return this.#n;
  }

  /** The fd at `index`. */
  fd(index: number): number {
    return this.#view.getInt32(8 * index, true);
  }

  /** What happened to the fd at `index` (0: nothing), after a wait. */
  revents(index: number): number {
    return this.#view.getInt16(8 * index + 6, true);
  }

  /** Waits on this thread for at most `timeoutMs` (-1: forever); the count of ready fds. */
  wait(timeoutMs: number): number {
    return pollArray(this.#buf, this.#n, timeoutMs);
  }

  /** As {@linkcode wait}, on a worker thread (0 on EINTR: errno is the worker's). */
  async waitAsync(timeoutMs: number): Promise<number> {
    const n = await libc().poll_async(this.#buf, BigInt(this.#n), timeoutMs);
    return Math.max(n, 0);
  }
}

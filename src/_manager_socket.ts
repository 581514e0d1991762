/**
 * A manager's sockets: the address a client connects to (a Unix socket path, or a host name or IP
 * literal and a port) and the connect itself. The socket is made in `native/` and carried by a
 * buffered `FdChannel` (`_fd_channel.ts`): read and written with synchronous calls, so that a
 * call's round trip costs two syscalls and no trip through the event loop's I/O (`Deno.Conn`
 * costs an async op each way: a round trip was twice as slow). The server's connections are such
 * channels too, waited on by its one poll loop (`_manager_listen.ts`).
 *
 * @module
 */
import { connectResult, connectSocket, OS, osError, type SocketAddress } from "../native/mod.ts";
import { FdChannel } from "./_fd_channel.ts";
import type { ManagerAddress } from "./_manager_wire.ts";
import { addressKey } from "./_manager_options.ts";

/** The socket address of a manager's address; a host name is looked up (`/etc/hosts`, DNS). */
export async function socketAddress(address: ManagerAddress): Promise<SocketAddress> {
  if ("path" in address) return { path: address.path };
  const { hostname, port } = address;
  const literal = parseIp(hostname);
  if (literal) return { ip: literal, port };
  // Loaded only here: a node: module costs every process that imports it milliseconds of start-up.
  const { lookup } = await import("node:dns/promises");
  const found = await lookup(hostname);
  const ip = parseIp(found.address);
  if (!ip) throw new Deno.errors.NotFound(`Cannot resolve ${JSON.stringify(hostname)}: got ${found.address}`);
  return { ip, port };
}

/** The bytes of an IPv4 or IPv6 literal (brackets allowed around IPv6), or null. */
export function parseIp(text: string): Uint8Array | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    return bytes.every((b) => b <= 255) ? new Uint8Array(bytes) : null;
  }
  const host = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (!host.includes(":") || !/^[0-9a-fA-F:.]+$/.test(host)) return null;
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  let groups = host;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (tail) {
    const b = parseIp(tail[1]);
    if (!b) return null;
    groups = host.slice(0, -tail[1].length) +
      `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return null;
  const part = (s: string) => s === "" ? [] : s.split(":");
  const head = part(halves[0]);
  const rest = halves.length === 2 ? part(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
    const g = parseInt(all[i], 16);
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

/**
 * Connects to `address` (without blocking the event loop while a TCP connect is in progress): a
 * buffered channel (`_fd_channel.ts`) over a socket that this process owns. Aborting `signal`
 * closes a socket still connecting (a connect to an address that drops it takes minutes).
 */
export async function connectChannel(address: ManagerAddress, signal?: AbortSignal): Promise<FdChannel> {
  const to = await socketAddress(address);
  signal?.throwIfAborted();
  const { fd, connected } = connectSocket(to);
  const ch = new FdChannel(fd, { buffered: true, name: "The manager connection" });
  if (!connected) {
    const giveUp = () => ch.close();
    signal?.addEventListener("abort", giveUp, { once: true });
    try {
      if (!(await ch.ready(OS.POLLOUT)) || ch.closed) {
        throw signal?.reason ?? new Deno.errors.Interrupted("closed");
      }
      const code = connectResult(fd);
      if (code !== 0) throw osError("connect", code, addressKey(address));
    } catch (e) {
      ch.close();
      throw e;
    } finally {
      signal?.removeEventListener("abort", giveUp);
    }
  }
  return ch;
}

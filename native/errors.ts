/**
 * Errors from libc calls: {@linkcode osError} turns a failed call's `errno` into the
 * `Deno.errors` class that fits (ENOENT → `NotFound`, EEXIST → `AlreadyExists`, EINTR →
 * `Interrupted`, ...), with a message naming the call, its subject and the errno's name, and the
 * `syscall`/`errno`/`code` fields of {@linkcode OsErrorInfo} for code that must tell them apart.
 *
 * @module
 */
import { OS } from "./constants.ts";
import { errno, strerror } from "./libc.ts";

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OS.errno).map(([name, code]) => [code, name]),
);

/** An error from a libc call: which call, and the `errno` it left. */
export interface OsErrorInfo {
  readonly syscall: string;
  readonly errno: number;
  readonly code: string;
}

/** Builds the error for a failed syscall, choosing the `Deno.errors` class that fits. */
export function osError(syscall: string, code = errno(), subject?: string): Error & OsErrorInfo {
  const name = ERRNO_NAMES[code] ?? `errno ${code}`;
  const message = `${syscall}(${subject ?? ""}) failed: ${strerror(code)} (${name})`;
  let err: Error;
  switch (code) {
    case OS.errno.ENOENT:
      err = new Deno.errors.NotFound(message);
      break;
    case OS.errno.EEXIST:
      err = new Deno.errors.AlreadyExists(message);
      break;
    case OS.errno.EACCES:
    case OS.errno.EPERM:
      err = new Deno.errors.PermissionDenied(message);
      break;
    case OS.errno.EBADF:
      err = new Deno.errors.BadResource(message);
      break;
    case OS.errno.ETIMEDOUT:
      err = new Deno.errors.TimedOut(message);
      break;
    case OS.errno.EINTR:
      err = new Deno.errors.Interrupted(message);
      break;
    case OS.errno.EPIPE:
      err = new Deno.errors.BrokenPipe(message);
      break;
    case OS.errno.EINVAL:
      err = new TypeError(message);
      break;
    default:
      err = new Error(message);
  }
  return Object.assign(err, { syscall, errno: code, code: name });
}

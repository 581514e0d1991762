/**
 * OS-specific numbers, all in one place. Linux (x86_64 and aarch64) is what we test; a port to
 * macOS adds its column here and nowhere else.
 *
 * @module
 */

const LINUX = {
  libc: "libc.so.6",
  O_RDONLY: 0,
  O_RDWR: 2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 1030,
  FD_CLOEXEC: 1,
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  SEEK_END: 2,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  /** clock_gettime(): the clock sem_timedwait's deadlines are on. */
  CLOCK_REALTIME: 0,
  PR_SET_PDEATHSIG: 1,
  /** waitid(): idtype for one pid, and the options "has exited" and "leave it unreaped". */
  P_PID: 1,
  WEXITED: 4,
  WNOWAIT: 0x0100_0000,
  /** sizeof(siginfo_t) */
  SIGINFO_SIZE: 128,
  CLOSE_RANGE_CLOEXEC: 4,
  /** Writes up to this many bytes to a pipe are atomic (POSIX PIPE_BUF). */
  PIPE_BUF: 4096,
  /** The largest value a POSIX semaphore can hold (SEM_VALUE_MAX). */
  SEM_VALUE_MAX: 0x7fff_ffff,
  /** The highest fd the close-on-exec fallback (no close_range) visits. */
  maxFdFallback: 4096,
  /** Where named semaphores and shared memory show up in the file system. */
  shmDir: "/dev/shm",
  /** File name prefix the kernel gives a named semaphore inside `shmDir`. */
  semFilePrefix: "sem.",
  /**
   * Longest name we give `sem_open`/`shm_open`, leading slash included. Linux takes 255; 31 is
   * macOS's limit, kept here too so that names made on Linux would work there.
   */
  maxNameLength: 31,
  /** Signal numbers (x86_64 and aarch64 agree). */
  signals: {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGILL: 4,
    SIGTRAP: 5,
    SIGABRT: 6,
    SIGBUS: 7,
    SIGFPE: 8,
    SIGKILL: 9,
    SIGUSR1: 10,
    SIGSEGV: 11,
    SIGUSR2: 12,
    SIGPIPE: 13,
    SIGALRM: 14,
    SIGTERM: 15,
    SIGSTKFLT: 16,
    SIGCHLD: 17,
    SIGCONT: 18,
    SIGSTOP: 19,
    SIGTSTP: 20,
    SIGTTIN: 21,
    SIGTTOU: 22,
    SIGURG: 23,
    SIGXCPU: 24,
    SIGXFSZ: 25,
    SIGVTALRM: 26,
    SIGPROF: 27,
    SIGWINCH: 28,
    SIGIO: 29,
    SIGPWR: 30,
    SIGSYS: 31,
  } as Record<string, number>,
  errno: {
    EPERM: 1,
    ENOENT: 2,
    ESRCH: 3,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    ECHILD: 10,
    EAGAIN: 11,
    ENOMEM: 12,
    EACCES: 13,
    EEXIST: 17,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOSPC: 28,
    EPIPE: 32,
    ENAMETOOLONG: 36,
    ENOSYS: 38,
    EOVERFLOW: 75,
    EADDRINUSE: 98,
    ECONNRESET: 104,
    ECONNREFUSED: 111,
    ETIMEDOUT: 110,
  },
} as const;

if (Deno.build.os !== "linux") {
  throw new Error(
    `multiprocessing: ${Deno.build.os} is not supported yet: only Linux has its numbers in native/constants.ts`,
  );
}

/** The numbers for the OS this program runs on. */
export const OS = LINUX;

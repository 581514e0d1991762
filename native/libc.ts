/**
 * The libc symbol table and its one loader. Each entry carries the C prototype beside it. This is
 * the only file that calls `Deno.dlopen`.
 *
 * Variadic functions (`fcntl`, `open`, `sem_open`, `prctl`) are declared with fixed arguments;
 * that matches the calling convention on Linux x86_64 and aarch64 (not on Apple arm64).
 *
 * @module
 */
import { OS } from "./constants.ts";

const SYMBOLS = {
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum) */
  strerror: { parameters: ["i32"], result: "pointer" },
  /** int clock_gettime(clockid_t clk, struct timespec *tp) */
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  /** pid_t getpid(void) */
  getpid: { parameters: [], result: "i32" },
  /** pid_t getppid(void) */
  getppid: { parameters: [], result: "i32" },
  /** int kill(pid_t pid, int sig) */
  kill: { parameters: ["i32", "i32"], result: "i32" },
  /** int sched_yield(void) */
  sched_yield: { parameters: [], result: "i32" },
  /** pid_t setsid(void) */
  setsid: { parameters: [], result: "i32" },
  /** int waitid(idtype_t idtype, id_t id, siginfo_t *infop, int options) (blocks the thread) */
  waitid: { parameters: ["i32", "u32", "buffer", "i32"], result: "i32" },
  /** int close_range(unsigned int first, unsigned int last, int flags) (glibc 2.34; CLOEXEC: Linux 5.11) */
  close_range: { parameters: ["u32", "u32", "i32"], result: "i32", optional: true },
  /** int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) */
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  /** int pipe2(int pipefd[2], int flags) */
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  /** int socketpair(int domain, int type, int protocol, int sv[2]) */
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int fd, const struct sockaddr *addr, socklen_t len) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int listen(int fd, int backlog) */
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /** int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) */
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  /** int connect(int fd, const struct sockaddr *addr, socklen_t len) */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) */
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /** int shutdown(int fd, int how) */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /** ssize_t recvmsg(int fd, struct msghdr *msg, int flags) */
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /** int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen) */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int getsockname(int fd, struct sockaddr *addr, socklen_t *len) */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** ssize_t send(int fd, const void *buf, size_t len, int flags) */
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *mask) */
  ppoll: { parameters: ["buffer", "u64", "buffer", "pointer"], result: "i32", optional: true },
  /** int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int fcntl(int fd, int cmd, int arg) */
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int open(const char *path, int flags, mode_t mode) */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** int access(const char *path, int mode) */
  access: { parameters: ["buffer", "i32"], result: "i32" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count) */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count) */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** int poll(...), on a worker thread so the event loop keeps running */
  poll_async: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** sem_t *sem_open(const char *name, int oflag, mode_t mode, unsigned int value) */
  sem_open: { parameters: ["buffer", "i32", "u32", "u32"], result: "pointer" },
  /** int sem_close(sem_t *sem) */
  sem_close: { parameters: ["pointer"], result: "i32" },
  /** int sem_unlink(const char *name) */
  sem_unlink: { parameters: ["buffer"], result: "i32" },
  /** int sem_wait(sem_t *sem) */
  sem_wait: { parameters: ["pointer"], result: "i32" },
  /** int sem_trywait(sem_t *sem) */
  sem_trywait: { parameters: ["pointer"], result: "i32" },
  /** int sem_timedwait(sem_t *sem, const struct timespec *abstime) */
  sem_timedwait: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int sem_timedwait(...), on a worker thread so the event loop keeps running */
  sem_timedwait_async: {
    name: "sem_timedwait",
    parameters: ["pointer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  /** int sem_post(sem_t *sem) */
  sem_post: { parameters: ["pointer"], result: "i32" },
  /** int sem_getvalue(sem_t *sem, int *sval) */
  sem_getvalue: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int shm_open(const char *name, int oflag, mode_t mode) */
  shm_open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** int shm_unlink(const char *name) */
  shm_unlink: { parameters: ["buffer"], result: "i32" },
  /** int ftruncate(int fd, off_t length) */
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  /** off_t lseek(int fd, off_t offset, int whence) */
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** int munmap(void *addr, size_t length) */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
type Name = keyof typeof SYMBOLS;

let table: Symbols | undefined;
/** Every library opened for a symbol: kept, since closing one would free its symbol's code. */
const opened: Deno.DynamicLibrary<Partial<typeof SYMBOLS>>[] = [];

/**
 * The libc symbols. Each is bound on its first use, by a `Deno.dlopen` of that symbol alone:
 * binding costs ~0.2 ms per symbol (Deno compiles a call trampoline for each), so binding all of
 * them up front cost every process and thread ~10 ms of its start, while a child uses a handful.
 * A bound symbol replaces its getter with a plain data property, so calls through it stay as
 * fast as through `dlopen(...).symbols`.
 */
export function libc(): Symbols {
  if (table) return table;
  const t = {} as Record<Name, unknown>;
  for (const name of Object.keys(SYMBOLS) as Name[]) {
    Object.defineProperty(t, name, {
      configurable: true,
      enumerable: true,
      get() {
        const value = bind(name);
        Object.defineProperty(t, name, { value, enumerable: true });
        return value;
      },
    });
  }
  return table = t as Symbols;
}

function bind(name: Name): unknown {
  let lib: Deno.DynamicLibrary<Partial<typeof SYMBOLS>>;
  try {
    lib = Deno.dlopen(OS.libc, { [name]: SYMBOLS[name] } as Partial<typeof SYMBOLS>);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.NotCapable(
        "multiprocessing needs libc through FFI: run deno with --allow-ffi (and --allow-run to start processes)",
        { cause: e },
      );
    }
    throw e;
  }
  opened.push(lib);
  return lib.symbols[name];
}

/** Reads `errno`; only meaningful right after a synchronous call that failed. */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** The C library's message for an errno value. */
export function strerror(code: number): string {
  const p = libc().strerror(code);
  return p === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(p);
}

/** A raw pointer as it crosses the FFI boundary; only `native/` looks inside. */
export type Pointer = Deno.PointerValue;

/** A view of `size` bytes of foreign memory at `ptr`, as an ArrayBuffer (no copy). */
export function viewMemory(ptr: NonNullable<Pointer>, size: number): ArrayBuffer {
  return Deno.UnsafePointerView.getArrayBuffer(ptr, size);
}

/** True when a pointer returned by libc is the C `(void*)-1` or NULL. */
export function isFailedPointer(ptr: Pointer): boolean {
  if (ptr === null) return true;
  return Deno.UnsafePointer.value(ptr) === 0xffff_ffff_ffff_ffffn;
}

const encoder = new TextEncoder();
/** `s` as a NUL-terminated C string; a NUL inside `s` would silently cut it short, so it is refused. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new TypeError(
      `Invalid argument ${JSON.stringify(s)}: it contains a NUL character, which C reads as its end`,
    );
  }
  return encoder.encode(s + "\0");
}

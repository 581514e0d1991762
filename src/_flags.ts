/**
 * The Deno flags a child process is started with: the parent's own permission, config and
 * import-map flags, never more. Deno cannot tell a program its own flags, but on Linux
 * `/proc/self/cmdline` holds them exactly (read through libc: Deno's file APIs refuse it without
 * --allow-all). Elsewhere we fall back to the permissions `Deno.permissions` reports as granted.
 *
 * @module
 */
import { fileExists, readFileRaw } from "../native/mod.ts";

// Flags that take their value as the next argument when written without "=": those shown as
// `--flag <VALUE>` by `deno run/test/bench/serve --help` (Deno 2.9). Flags shown as
// `--flag[=<VALUE>]` (--env-file, --inspect-wait, ...) take a value only after "=": counting
// them here would swallow the script's name and read its arguments as Deno flags.
const VALUE_FLAGS = new Set([
  "-c",
  "--config",
  "--import-map",
  "--location",
  "--seed",
  "--cert",
  "--ext",
  "--preload",
  "--require",
  "--conditions",
  "--min-dep-age",
  "--node-modules-linker",
  "--inspect-publish-uid",
  "--filter",
  "--reporter",
  "--junit-path",
  "--coverage-threshold",
  "--related",
  "--repeats",
  "--retry",
  "--shard",
  "--host",
  "--port",
]);
// `--lock [<VALUE>]`: an optional value, taken from the next argument unless that is a flag.
const OPTIONAL_VALUE_FLAGS = new Set(["--lock"]);
// Flags the child gets as they are, with their value.
const FORWARD = [
  /^--allow-/,
  /^--deny-/,
  /^--ignore-/,
  /^--no-prompt$/,
  /^--permission-set/,
  /^--config$/,
  /^--config=/,
  /^-c$/,
  /^--no-config$/,
  /^--import-map(=|$)/,
  /^--v8-flags=/,
  /^--unstable/,
  /^--lock(=|$)/,
  /^--no-lock$/,
  /^--frozen(=|$)/,
  /^--cached-only$/,
  /^--node-modules-dir(=|$)/,
  /^--vendor(=|$)/,
  /^--no-remote$/,
  /^--no-npm$/,
  /^--location(=|$)/,
  /^--seed(=|$)/,
  /^--cert(=|$)/,
  /^--unsafely-ignore-certificate-errors/,
  /^--quiet$/,
  /^--conditions(=|$)/,
];
// Short permission flags (-A, -R, -W, -N, -E, -S, -P, and -q), alone or grouped.
const SHORT = /^-[ARWNESPq]+$/;
// Subcommands after which the first plain argument is the script and ends the flags.
const SCRIPT_COMMANDS = new Set(["run", "serve", "eval"]);

/** Picks the flags a child should get from a full Deno command line (argv[0] is deno itself). */
export function forwardableFlags(argv: string[]): string[] {
  let i = 1;
  let command = "run";
  if (i < argv.length && !argv[i].startsWith("-")) {
    // `deno main.ts` is `deno run main.ts`.
    if (/^[a-z]+$/.test(argv[i])) command = argv[i++];
  }
  const out: string[] = [];
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") break;
    if (!arg.startsWith("-")) {
      if (SCRIPT_COMMANDS.has(command)) break;
      continue;
    }
    const takesNext = i + 1 < argv.length &&
      (VALUE_FLAGS.has(arg) || (OPTIONAL_VALUE_FLAGS.has(arg) && !argv[i + 1].startsWith("-")));
    if (SHORT.test(arg) || FORWARD.some((re) => re.test(arg))) {
      out.push(arg);
      if (takesNext) out.push(argv[i + 1]);
    }
    if (takesNext) i++;
  }
  return out;
}

const PERMISSIONS = ["read", "write", "net", "env", "sys", "run", "ffi", "import"] as const;

function flagsFromPermissions(): string[] {
  return PERMISSIONS.filter((name) => {
    try {
      return Deno.permissions.querySync({ name } as Deno.PermissionDescriptor).state === "granted";
    } catch {
      return false;
    }
  }).map((name) => `--allow-${name}`);
}

/**
 * The config file Deno found by itself for this program, if any. Deno looks for deno.json(c)
 * from the main module's folder upwards; a child's main module is a data: URL, for which it looks
 * nowhere, so the child must be told (else its import map is missing).
 */
function discoveredConfig(flags: string[]): string[] {
  if (flags.some((f) => /^(-c|--config|--no-config)(=|$)/.test(f))) return [];
  // Inside a Worker, Deno.mainModule is undefined: the worker's own module stands in for it.
  const main: string | undefined = Deno.mainModule ?? (globalThis as { location?: Location }).location?.href;
  if (!main?.startsWith("file:")) return [];
  let dir = new URL(".", main);
  for (;;) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = decodeURIComponent(new URL(name, dir).pathname);
      if (fileExists(path)) return [`--config=${path}`];
    }
    const up = new URL("..", dir);
    if (up.href === dir.href) return [];
    dir = up;
  }
}

let cached: string[] | undefined;

/** The flags every child of this process gets (computed once). */
export function childFlags(): string[] {
  if (cached) return cached;
  let flags: string[];
  try {
    const argv = new TextDecoder().decode(readFileRaw("/proc/self/cmdline")).split("\0");
    if (argv.at(-1) === "") argv.pop();
    flags = forwardableFlags(argv);
  } catch {
    flags = flagsFromPermissions();
  }
  flags.push(...discoveredConfig(flags));
  // A child has no terminal to answer a permission prompt on.
  if (!flags.includes("--no-prompt")) flags.push("--no-prompt");
  return (cached = flags);
}

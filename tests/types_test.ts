import assert from "node:assert/strict";
import { runDeno } from "./fixtures/helpers.ts";

const FIXTURE = new URL("./fixtures/types_fixture.ts", import.meta.url);
const MOD = new URL("../mod.ts", import.meta.url).href;
const DIRECTIVE = /^\s*\/\/ @ts-expect-error: (.*)$/;

async function denoCheck(file: string): Promise<{ ok: boolean; out: string }> {
  const { code, stdout, stderr } = await runDeno(["check", "--quiet", file], {
    env: { NO_COLOR: "1" },
    timeoutMs: 120_000,
  });
  return { ok: code === 0, out: stdout + stderr };
}

Deno.test("The type fixture compiles, with every @ts-expect-error directive used", async () => {
  const { ok, out } = await denoCheck(FIXTURE.pathname);
  assert.ok(ok, `deno check ${FIXTURE.pathname} failed:\n${out}`);
});

Deno.test("Each mistake in the type fixture is a compile error of its own without its directive", async () => {
  const lines = (await Deno.readTextFile(FIXTURE)).split("\n");
  // The line after each directive must fail; blanking the directive keeps the line numbers.
  const expected = new Map<number, string>();
  const open = lines.map((line, i) => {
    const m = DIRECTIVE.exec(line);
    if (!m) return line.replace(`"../../mod.ts"`, JSON.stringify(MOD));
    expected.set(i + 2, m[1]);
    return "//";
  });
  assert.ok(expected.size >= 8, `only ${expected.size} directives in the fixture`);
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/types_open.ts`;
    await Deno.writeTextFile(file, open.join("\n"));
    const { ok, out } = await denoCheck(file);
    assert.ok(!ok, "the fixture compiled without its directives");
    const failing = new Set(
      [...out.matchAll(/types_open\.ts:(\d+):\d+/g)].map((m) => Number(m[1])),
    );
    const missed = [...expected].filter(([line]) => !failing.has(line)).map(([l, why]) =>
      `line ${l}: ${why}`
    );
    assert.deepEqual(missed, [], `these mistakes compile:\n${missed.join("\n")}\n${out}`);
    const stray = [...failing].filter((line) => !expected.has(line));
    assert.deepEqual(stray, [], `errors on lines that should compile:\n${out}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

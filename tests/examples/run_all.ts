/**
 * Runs every example in this folder, one after the other, and fails if any fails.
 *
 * Run: deno task examples
 */
import { spawnDeno } from "../fixtures/helpers.ts";

const dir = new URL("./", import.meta.url);
const names = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "run_all.ts")
  .sort();

const failed: string[] = [];
for (const name of names) {
  console.log(`\n=== ${name} ===`);
  const { code } = await spawnDeno(["run", "-A", new URL(name, dir).pathname], {
    stdout: "inherit",
    stderr: "inherit",
  }).status;
  if (code !== 0) failed.push(`${name} (exit code ${code})`);
}
console.log(`\n${names.length - failed.length} of ${names.length} examples ran cleanly`);
if (failed.length) {
  console.error(`Failed: ${failed.join(", ")}`);
  Deno.exit(1);
}

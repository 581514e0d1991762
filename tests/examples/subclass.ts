/**
 * A Process subclass: the instance's fields travel to the child, where its run() is called.
 * The class must be exported so the child can import it.
 *
 * Run: deno task example:subclass
 */
import { currentProcess, Process } from "@mp/multiprocessing";

export class Countdown extends Process {
  from: number;
  constructor(from: number, name: string) {
    super({ name });
    this.from = from;
  }

  override async run(): Promise<void> {
    for (let i = this.from; i > 0; i--) {
      console.log(`${currentProcess().name}: ${i}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`${currentProcess().name}: liftoff`);
  }
}

if (import.meta.main) {
  const rocket = new Countdown(3, "rocket");
  await rocket.start();
  await rocket.join();
  console.log(`rocket exited with code ${rocket.exitCode}`);
}

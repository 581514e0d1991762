import assert from "node:assert/strict";
import { type DictProxy, LockProxy, Manager, RLockProxy } from "../mod.ts";
import { SPAWNS } from "./fixtures/helpers.ts";
import { objectCount } from "../src/manager.ts";

Deno.test({
  name:
    "Manager.unpublish() removes a name and says whether it did; the object lives while a proxy holds it and is freed after",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const base = await objectCount(manager);
    const d = await manager.dict({ a: 1 });
    await manager.publish("d", d);
    d.close();
    assert.equal(await objectCount(manager), base + 1, "the name holds it");
    const back = await manager.lookup<DictProxy<number>>("d");
    assert.equal(await manager.unpublish("d"), true);
    assert.equal(await manager.unpublish("d"), false, "the name is gone already");
    assert.equal(await manager.unpublish("never published"), false);
    assert.deepEqual(await manager.names(), []);
    await assert.rejects(manager.lookup("d"), Deno.errors.NotFound);
    assert.equal(await back.get("a"), 1, "a proxy still holds it");
    assert.equal(await objectCount(manager), base + 1);
    back.close();
    assert.equal(await objectCount(manager), base, "freed with its last proxy");
    // Published twice: removing one name leaves the other.
    const e = await manager.dict();
    await manager.publish("x", e);
    await manager.publish("y", e);
    e.close();
    assert.equal(await manager.unpublish("x"), true);
    assert.deepEqual(await manager.names(), ["y"]);
    assert.equal(await objectCount(manager), base + 1);
    assert.equal(await manager.unpublish("y"), true);
    assert.equal(await objectCount(manager), base);
    await assert.rejects(() => manager.unpublish(5 as unknown as string), TypeError);
  },
});

Deno.test({
  name:
    "A manager condition's lock is a proxy to the lock it uses (the one given, or its own rlock), the same proxy each time",
  ...SPAWNS,
  async fn() {
    await using manager = await Manager.start();
    const base = await objectCount(manager);
    const lock = await manager.lock();
    const cond = await manager.condition(lock);
    assert.ok(cond.lock instanceof LockProxy && !(cond.lock instanceof RLockProxy));
    assert.equal(cond.lock, cond.lock);
    await cond.acquire();
    assert.equal(await lock.locked(), true, "the condition acquired the lock given");
    await cond.lock.release();
    assert.equal(await lock.locked(), false, "releasing cond.lock released it");

    const own = await manager.condition();
    assert.ok(own.lock instanceof RLockProxy);
    assert.equal(await own.lock.acquire({ timeout: 0 }), true);
    await own.notify(); // this client holds the condition's lock through cond.lock
    await own.lock.release();
    await assert.rejects(own.notify(), /not held/);

    // The condition keeps its own rlock alive; both go with the last proxies.
    for (const p of [own.lock, own, cond.lock, cond, lock]) p.close();
    assert.equal(await objectCount(manager), base);
  },
});

// The task of the piscina and workerpool baselines (see _node_pools.mjs): as tiny as `identity`.
"use strict";
function identity(x) {
  return x;
}
module.exports = identity;
module.exports.identity = identity;
// workerpool: a worker script registers its functions when loaded by workerpool's worker.
if (require("node:worker_threads").workerData?.workerpool !== false) {
  try {
    require("../npm/node_modules/workerpool").worker({ identity });
  } catch {
    // loaded by piscina, where workerpool's worker() has nothing to attach to
  }
}

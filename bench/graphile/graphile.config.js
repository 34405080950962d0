// Batched mode (graphile-worker 0.17): jobs fetched in batches into a local queue of
// GW_LOCAL_QUEUE (default concurrency + 1) and completions/failures written in batches.
// One process, localQueue ~200, concurrency ~10 is its best throughput shape on 2 cores.
const concurrency = parseInt(process.env.GW_CONCURRENCY || "16", 10);
const localQueue = parseInt(process.env.GW_LOCAL_QUEUE || String(concurrency + 1), 10);
module.exports = {
  worker: {
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    localQueue: { size: localQueue },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    pollInterval: 1000,
  },
};

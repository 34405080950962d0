// Batched mode (graphile-worker 0.17): jobs fetched in batches into a local queue and
// completions/failures written in batches, the settings its release notes recommend.
const concurrency = parseInt(process.env.GW_CONCURRENCY || "16", 10);
module.exports = {
  worker: {
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    localQueue: { size: concurrency + 1 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    pollInterval: 1000,
  },
};

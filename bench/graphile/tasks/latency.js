// Prints how long ago the job was enqueued (payload.t, ms since the epoch, sub-ms precision).
const { performance } = require("perf_hooks");
module.exports = async (payload) => {
  process.stdout.write(`LAT ${performance.timeOrigin + performance.now() - payload.t}\n`);
};

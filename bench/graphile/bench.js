#!/usr/bin/env node
// graphile-worker with the workload of `qpo bench queue`: N noop jobs enqueued in batches
// of B, worked by W `graphile-worker --once` processes of C concurrent jobs and a local queue
// of L; then M jobs enqueued one at a time on an idle queue for enqueue-to-start latency.
// Throughput is timed as qpo's is: on the server's clock, from just before the processes
// start to the beginning of the transaction that completed the last job (done_trigger.sql).
// One JSON line.
//   node bench.js --jobs N --workers W --concurrency C --local-queue L --batch B --latency-jobs M
// DATABASE_URL: a database of its own.
const { spawn, execFileSync } = require("child_process");
const { performance } = require("perf_hooks");
const path = require("path");
const { Client } = require("pg");

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const N = parseInt(args.jobs || "20000", 10);
const W = parseInt(args.workers || "4", 10);
const C = parseInt(args.concurrency || "16", 10);
const B = parseInt(args.batch || "1000", 10);
const M = parseInt(args["latency-jobs"] || "200", 10);
const L = parseInt(args["local-queue"] || String(C + 1), 10);
const url = process.env.DATABASE_URL;
const bin = path.join(__dirname, "node_modules", ".bin", "graphile-worker");
const env = { ...process.env, GW_CONCURRENCY: String(C), GW_LOCAL_QUEUE: String(L), NO_LOG_SUCCESS: "1" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function worker(once, onLine) {
  const argv = ["-c", url, "--config", path.join(__dirname, "graphile.config.js")];
  if (once) argv.push("--once");
  const child = spawn(bin, argv, { cwd: __dirname, env, stdio: ["ignore", "pipe", "ignore"] });
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return { child, exited };
}

async function main() {
  execFileSync(bin, ["-c", url, "--schema-only"], { cwd: __dirname, env, stdio: "ignore" });
  const db = new Client({ connectionString: url });
  await db.connect();
  await db.query(require("fs").readFileSync(path.join(__dirname, "done_trigger.sql"), "utf8"));
  const t0 = performance.now();
  for (let done = 0; done < N; done += B) {
    const k = Math.min(B, N - done);
    await db.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(array(
         SELECT ('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
           FROM generate_series(1, $1::int)))`,
      [k],
    );
  }
  const t1 = performance.now();
  const clock = "SELECT extract(epoch FROM clock_timestamp())::float8 AS s";
  const start = (await db.query(clock)).rows[0].s;
  await Promise.all(Array.from({ length: W }, () => worker(true, () => {}).exited));
  const done = (await db.query(
    "SELECT extract(epoch FROM max(at))::float8 AS e, extract(epoch FROM min(at))::float8 AS f FROM bench_done",
  )).rows[0];
  const end = done.e;
  const left = await db.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
  if (left.rows[0].n !== 0) throw new Error(`${left.rows[0].n} jobs left after --once workers`);

  const lats = [];
  const procs = Array.from({ length: W }, () =>
    worker(false, (line) => line.startsWith("LAT ") && lats.push(parseFloat(line.slice(4)))),
  );
  await sleep(1500); // connect and LISTEN
  for (let i = 0; i < M; i++) {
    const t = performance.timeOrigin + performance.now();
    await db.query("SELECT graphile_worker.add_job('latency', json_build_object('t', $1::float8))", [t]);
    await sleep(5);
  }
  for (let tries = 0; lats.length < M && tries < 500; tries++) await sleep(10);
  for (const p of procs) p.child.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.exited));
  await db.end();
  lats.sort((a, b) => a - b);
  const pct = (p) => lats[Math.min(lats.length - 1, Math.floor(p * lats.length))];
  console.log(
    JSON.stringify({
      bench: "graphile-worker@0.17.3",
      jobs: N, workers: W, concurrency: C, local_queue: L, batch: B,
      enqueue_per_s: Math.round(N / ((t1 - t0) / 1000)),
      jobs_per_s: Math.round(N / (end - start)),
      // Without Node start-up and the first fetch: the steady state alone.
      steady_jobs_per_s: end > done.f ? Math.round(N / (end - done.f)) : 0,
      p50_ms: +pct(0.5).toFixed(3), p99_ms: +pct(0.99).toFixed(3), latency_jobs: lats.length,
    }),
  );
}

main().catch((e) => {
  console.error(`graphile bench: ${e.message}`);
  process.exit(1);
});

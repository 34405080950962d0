/* The promise, tried: a multi-task, multi-seed experiment survives its processes being
 * SIGKILLed at random, its PostgreSQL server being restarted, a target LLM failing one call in
 * five and a target down for longer than the retry budget, and ends on exactly what a calm run
 * of it produces.
 *
 * The experiment (chaos_fixture.h: TweetEval emotion and SVAMP, 2 seeds, 2 loops, a tiny
 * policy on the CPU, qpo sim-llm as the target) runs once calmly (the group setup); each test
 * runs it again in a fresh database and compares.
 *
 * Kills: a seeded driver SIGKILLs the scheduler, the cpu worker or the gpu worker at intervals
 * paced by the calm run's time (so that all land inside the run, fast machine or slow) and
 * starts a replacement at once, and restarts PostgreSQL (pg_ctl restart -m fast) once,
 * mid-run. Then:
 *   - qpo.results, qpo.rewards' deterministic columns and every final checkpoint's SHA-256
 *     (hashed again from the file) equal the calm run's;
 *   - no job is lost or completed twice: the same jobs per kind, all succeeded, each with
 *     exactly one 'succeeded' event in qpo.job_events;
 *   - the work redone after the kills is bounded: a retried train job resumes at most one
 *     epoch (the checkpoint interval) behind what its killed attempts had reached; no retry
 *     pays again for an answer recorded by an earlier attempt (the cache serves it); and the
 *     calls the simulator answered that no attempt recorded (lost with a killed worker or to
 *     the restart) are at most what the cpu worker had in flight at each such event.
 *
 * LLM faults: 20% of the target's calls fail in mixed ways (429 with Retry-After, 500, hung
 * past the client's timeout, dropped connections, truncated and malformed bodies): same
 * results, and every failed attempt is in qpo.llm_calls, as many of each kind as the
 * simulator's seeded schedule injected.
 *
 * Target down: with nothing listening and a retry budget of 1, the reward jobs end dead with
 * an error naming the target, the experiment failed; once the target is back, `qpo resume`
 * finishes it, on the calm run's results.
 *
 * QPO_CHAOS_LONG=1 runs a longer version (3 seeds, 3 loops, more epochs, 30 kills). Skipped
 * under ASan (the experiment would not fit CI's budget; the kill paths run sanitized in
 * tests/queue and tests/trainer), and without ../shared/data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chaos_fixture.h"
#include "faults.h"
#include "pgtest.h"
#include "splitmix.h"

#define MAX_INFLIGHT 8 /* the target's, chaos_fixture.c */
#define CPU_THREADS 4  /* the cpu worker's --concurrency */

static qpo_pgtest *pg;
static const char *data;
static chaos_size size;
static chaos_sim sim;
static chaos_exp calm;
static int calm_s;
static long calm_ms; /* the calm run's wall time: the storm is paced by it */

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs the experiment with every process up until it finishes; its final state (malloc'd). */
static char *run_quietly(chaos_exp *e) {
    for (int r = 0; r < CHAOS_ROLES; r++)
        chaos_start(e, (chaos_role)r);
    char *state = chaos_wait_finished(e, 900);
    chaos_stop_all(e);
    return state;
}

static void expect_done(chaos_exp *e, char *state, const char *which) {
    if (strcmp(state, "done"))
        fail_msg("the %s run ended %s: %s (logs in %s/logs)", which, state, chaos_jobs_text(e),
                 e->dir);
    free(state);
}

typedef struct storm {
    int kills[CHAOS_ROLES];
    int total, pg_restarts;
} storm;

/* Kills a random process at seeded intervals paced by the calm run until max_kills, restarting
 * PostgreSQL once after the second kill, then waits for the experiment to finish. */
static void run_storm(chaos_exp *e, uint64_t seed, int max_kills, storm *s) {
    memset(s, 0, sizeof *s);
    for (int r = 0; r < CHAOS_ROLES; r++)
        chaos_start(e, (chaos_role)r);
    uint64_t rng = seed;
    while (!chaos_finished(e) && s->total < max_kills) {
        /* Paced by the calm run, so that every kill lands inside the run on a fast machine
         * and a slow one alike: intervals of 0.5 to 1.5 x (calm time / (kills + 3)). */
        long base = calm_ms / (max_kills + 3) > 150 ? calm_ms / (max_kills + 3) : 150;
        long wait = base / 2 + (long)(qpo_mix64_next(&rng) % (unsigned long)base);
        for (long t = 0; t < wait && !chaos_finished(e); t += 50)
            sleep_ms(50);
        if (chaos_finished(e))
            break;
        if (s->total == 2 && s->pg_restarts == 0) {
            fprintf(stderr, "chaos: pg_ctl restart -m fast\n");
            qpo_pgtest_restart(pg);
            s->pg_restarts++;
            continue;
        }
        chaos_role r = (chaos_role)(qpo_mix64_next(&rng) % CHAOS_ROLES);
        int g = e->generation[r];
        if (chaos_stop(e, r, SIGKILL) != 128 + SIGKILL)
            fail_msg("%s-%d had died on its own before its kill (log: %s/logs/%s-%d.log)",
                     chaos_role_name[r], g, e->dir, chaos_role_name[r], g);
        chaos_start(e, r);
        s->kills[r]++;
        s->total++;
        fprintf(stderr, "chaos: SIGKILL %s, started %s-%d (%s)\n", chaos_role_name[r],
                chaos_role_name[r], e->generation[r], chaos_jobs_text(e));
    }
    char *state = chaos_wait_finished(e, 900);
    chaos_stop_all(e);
    if (strcmp(state, "done"))
        fail_msg("the chaos run ended %s: %s (logs in %s/logs)", state, chaos_jobs_text(e), e->dir);
    free(state);
}

/* On a difference, the first line that differs (the rows are sorted by their keys). */
static void assert_same(const char *what, char *want, char *got) {
    if (strcmp(want, got)) {
        const char *a = want, *b = got;
        while (*a && *a == *b)
            a++, b++;
        while (a > want && a[-1] != '\n')
            a--, b--;
        fail_msg("%s differ from the calm run's; first difference:\ncalm: %.*s\nthis: %.*s", what,
                 (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
    }
    free(want);
    free(got);
}

/* Exactly one 'succeeded' event per job and every job succeeded: none lost, none done twice. */
static void assert_each_job_once(chaos_exp *e) {
    assert_int_equal(chaos_ll(e, "SELECT count(*) FROM qpo.jobs WHERE state <> 'succeeded'"), 0);
    assert_int_equal(chaos_ll(e, "SELECT count(*) FROM qpo.jobs j WHERE (SELECT count(*) FROM "
                                 "qpo.job_events v WHERE v.job_id = j.id AND v.to_state = "
                                 "'succeeded') <> 1"),
                     0);
    assert_int_equal(chaos_ll(e, "SELECT count(*) FROM qpo.job_events v WHERE NOT EXISTS "
                                 "(SELECT 1 FROM qpo.jobs j WHERE j.id = v.job_id)"),
                     0);
}

/* How far behind its killed attempts a retried train job resumed, in epochs (the epochs it
 * trained again). */
static long long train_epochs_redone(chaos_exp *e) {
    return chaos_ll(e, "SELECT coalesce(max(m.reached - (j.result->>'resumed_from_epoch')::int), "
                       "0) FROM qpo.jobs j JOIN LATERAL (SELECT max(epoch) reached FROM "
                       "qpo.train_metrics t WHERE t.job_id = j.id AND t.attempt < j.attempt) m "
                       "ON true WHERE j.kind = 'train' AND j.attempt > 1");
}

/* A retry that paid again for an answer an earlier attempt of its job had recorded: the cache
 * exists so that this never happens. */
static long long calls_repaid(chaos_exp *e) {
    return chaos_ll(e, "SELECT count(*) FROM qpo.llm_calls l WHERE l.status = 'ok' AND NOT "
                       "l.cache_hit AND EXISTS (SELECT 1 FROM qpo.llm_calls p WHERE p.job_id = "
                       "l.job_id AND p.job_attempt < l.job_attempt AND p.request_hash = "
                       "l.request_hash AND p.status = 'ok' AND NOT p.cache_hit)");
}

/* Same results, rewards and checkpoint bytes as the calm run; every job succeeded once. */
static void assert_as_calm(chaos_exp *e) {
    assert_same("qpo.results", chaos_results_text(&calm), chaos_results_text(e));
    assert_same("qpo.rewards", chaos_rewards_text(&calm), chaos_rewards_text(e));
    assert_same("final checkpoints", chaos_checkpoints_text(&calm), chaos_checkpoints_text(e));
    assert_same("jobs per kind and state", chaos_jobs_text(&calm), chaos_jobs_text(e));
    assert_each_job_once(e);
}

static int skip_all; /* set by the group setup: ASan, or no ../shared/data */

/* In the test body, not a setup function: cmocka counts a skip() in a setup as a failed
 * setup. */
static void skip_if_needed(void) {
    if (skip_all)
        skip();
}

static void test_kills_and_a_server_restart_change_nothing(void **state) {
    (void)state;
    skip_if_needed();
    int max_kills = getenv("QPO_CHAOS_LONG") && atoi(getenv("QPO_CHAOS_LONG")) > 0 ? 30 : 10;
    time_t t1 = time(NULL);
    /* Its own simulator: the requests it served minus the attempts recorded are the calls
     * answered but lost with a killed worker (or an audit insert the restart refused). */
    chaos_sim own = {0};
    chaos_sim_start(&own, data, "127.0.0.1:0", NULL);
    chaos_exp e;
    chaos_setup(&e, pg, data, own.url, &size, NULL);
    storm s;
    run_storm(&e, 12, max_kills, &s);
    time_t t2 = time(NULL);
    long long served = chaos_sim_stop(&own);
    long long lost =
        served - chaos_ll(&e, "SELECT count(*) FROM qpo.llm_calls WHERE NOT cache_hit");

    long long epochs_redone = train_epochs_redone(&e);
    long long repaid = calls_repaid(&e);
    fprintf(
        stderr,
        "chaos: calm run %d s, chaos run %ld s; %d kills (scheduler %d, cpu %d, gpu %d), "
        "%d PostgreSQL restart(s); train jobs retried %lld, resumed at most %lld epoch(s) "
        "behind; job attempts failed or given back %lld; LLM calls served %lld, lost unrecorded "
        "%lld, paid again by a retry %lld, answered from the cache %lld (calm: %lld)\n",
        calm_s, (long)(t2 - t1), s.total, s.kills[CHAOS_SCHEDULER], s.kills[CHAOS_CPU],
        s.kills[CHAOS_GPU], s.pg_restarts,
        chaos_ll(&e, "SELECT count(*) FROM qpo.jobs WHERE kind = 'train' AND attempt > 1"),
        epochs_redone,
        chaos_ll(&e, "SELECT count(*) FROM qpo.job_events WHERE to_state IN ('failed', "
                     "'dead') OR (from_state = 'running' AND to_state = 'queued')"),
        served, lost, repaid, chaos_ll(&e, "SELECT count(*) FROM qpo.llm_calls WHERE cache_hit"),
        chaos_ll(&calm, "SELECT count(*) FROM qpo.llm_calls WHERE cache_hit"));
    assert_true(s.total >= 3);
    assert_int_equal(s.pg_restarts, 1);

    assert_as_calm(&e);
    assert_true(epochs_redone <= 1);
    /* Redone LLM work: only what was in flight at a kill or the restart (at most the cpu
     * worker's threads x max_inflight each time); nothing recorded is paid twice. */
    assert_true(lost >= 0);
    assert_true(lost <=
                (long long)(s.kills[CHAOS_CPU] + s.pg_restarts) * CPU_THREADS * MAX_INFLIGHT);
    assert_int_equal(repaid, 0);
    chaos_teardown(&e);
}

static void test_llm_faults_change_nothing(void **state) {
    (void)state;
    skip_if_needed();
    /* 20% of calls: 6% 429 or 500 (Retry-After 1 s), 4% dropped, 4% hung past the 1.5 s client
     * timeout, 3% truncated, 3% malformed. */
    sim_faults f = {.fail_rate = 0.06,
                    .fail_status = {429, 500},
                    .n_fail_status = 2,
                    .drop_rate = 0.04,
                    .hang_rate = 0.04,
                    .truncate_rate = 0.03,
                    .malformed_rate = 0.03,
                    .seed = 11};
    chaos_sim faulty = {0};
    chaos_sim_start(&faulty, data, "127.0.0.1:0",
                    "--fail-rate 0.06 --fail-status 429,500 --retry-after 1 --drop-rate 0.04 "
                    "--hang-rate 0.04 --hang-ms 4000 --truncate-rate 0.03 --malformed-rate 0.03 "
                    "--seed 11");
    chaos_exp e;
    chaos_setup(&e, pg, data, faulty.url, &size, "\"timeout_ms\": 1500, \"retry_budget\": 12");
    time_t t0 = time(NULL);
    expect_done(&e, run_quietly(&e), "LLM faults");
    long long n = chaos_sim_stop(&faulty);
    assert_true(n > 0);
    assert_as_calm(&e);

    /* What the simulator's schedule gave its n requests, class by class, against the attempts
     * recorded in qpo.llm_calls. */
    enum { OK, DROPPED, LIMITED, SERVER, TRUNCATED, SHAPE, TIMEOUT, CLASSES };
    static const char *const sql[CLASSES] = {
        "status = 'ok'",     "status = 'dropped'",   "status = 'rate_limited'",
        "status = 'server'", "status = 'malformed'", "status IN ('shape', 'no_logprobs')",
        "status = 'timeout'"};
    long long want[CLASSES] = {0}, got[CLASSES] = {0};
    for (long long i = 0; i < n; i++) {
        unsigned variant;
        sim_fault k = sim_fault_for(&f, (uint64_t)i, &variant);
        int c = k == SIM_FAULT_DROP   ? DROPPED
                : k == SIM_FAULT_FAIL ? (sim_fault_status(&f, variant) == 429 ? LIMITED : SERVER)
                : k == SIM_FAULT_TRUNCATE  ? TRUNCATED
                : k == SIM_FAULT_MALFORMED ? SHAPE
                : k == SIM_FAULT_HANG      ? TIMEOUT
                                           : OK;
        want[c]++;
    }
    char q[200], report[512] = "";
    size_t len = 0;
    long long recorded = 0;
    for (int c = 0; c < CLASSES; c++) {
        snprintf(q, sizeof q, "SELECT count(*) FROM qpo.llm_calls WHERE NOT cache_hit AND %s",
                 sql[c]);
        got[c] = chaos_ll(&e, q);
        recorded += got[c];
        len += (size_t)snprintf(report + len, sizeof report - len, " [%s] %lld/%lld", sql[c],
                                got[c], want[c]);
    }
    fprintf(stderr,
            "LLM faults: %ld s (calm %d s); %lld requests served, %lld attempts recorded; "
            "recorded/injected:%s\n",
            (long)(time(NULL) - t0), calm_s, n, recorded, report);
    /* Statuses and bodies come back one for one. */
    assert_int_equal(got[LIMITED], want[LIMITED]);
    assert_int_equal(got[SERVER], want[SERVER]);
    assert_int_equal(got[TRUNCATED], want[TRUNCATED]);
    assert_int_equal(got[SHAPE], want[SHAPE]);
    assert_true(got[LIMITED] > 0 && got[SERVER] > 0 && got[TRUNCATED] > 0 && got[SHAPE] > 0);
    /* A hung reply always times out; on a loaded machine a slow ordinary one may too (then it
     * is one fewer ok). */
    assert_true(got[TIMEOUT] >= want[TIMEOUT] && want[TIMEOUT] > 0);
    assert_int_equal(got[OK], want[OK] - (got[TIMEOUT] - want[TIMEOUT]));
    /* A drop on a reused keep-alive connection is resent by libcurl itself, before the client
     * sees it: those are the only requests the server saw that no attempt records. */
    assert_true(got[DROPPED] > 0 && got[DROPPED] <= want[DROPPED]);
    assert_int_equal(recorded, n - (want[DROPPED] - got[DROPPED]));
    assert_int_equal(chaos_ll(&e, "SELECT count(*) FROM qpo.llm_calls WHERE status <> 'ok' AND "
                                  "coalesce(error, '') = ''"),
                     0);
    chaos_teardown(&e);
}

static void test_target_down_then_resume(void **state) {
    (void)state;
    skip_if_needed();
    /* A free port: a simulator bound to it, then stopped. */
    chaos_sim probe = {0};
    chaos_sim_start(&probe, data, "127.0.0.1:0", NULL);
    char url[128], listen[64];
    snprintf(url, sizeof url, "%s", probe.url);
    snprintf(listen, sizeof listen, "%s", probe.url + strlen("http://"));
    chaos_sim_stop(&probe);

    chaos_exp e;
    chaos_setup(&e, pg, data, url, &size, "\"retry_budget\": 1, \"connect_timeout_ms\": 500");
    chaos_exec(&e, "UPDATE qpo.job_kinds SET max_attempts = 2");
    char *st = run_quietly(&e);
    assert_string_equal(st, "failed");
    free(st);
    char *why = chaos_str(&e, "SELECT kind || ': ' || last_error FROM qpo.jobs WHERE state = "
                              "'dead' ORDER BY id LIMIT 1");
    fprintf(stderr, "target down: %s\n", why);
    assert_non_null(strstr(why, "reward: ") ? why : strstr(why, "score: "));
    assert_non_null(strstr(why, strrchr(listen, ':') + 1)); /* the port */
    free(why);
    assert_true(chaos_ll(&e, "SELECT count(*) FROM qpo.llm_calls WHERE status = 'connect'") > 0);

    chaos_sim back = {0};
    chaos_sim_start(&back, data, listen, NULL);
    const char *resume[] = {"resume", "1", NULL};
    assert_int_equal(chaos_qpo(&e, resume), 0);
    expect_done(&e, run_quietly(&e), "resumed");
    chaos_sim_stop(&back);
    assert_same("qpo.results", chaos_results_text(&calm), chaos_results_text(&e));
    assert_same("qpo.rewards", chaos_rewards_text(&calm), chaos_rewards_text(&e));
    assert_same("final checkpoints", chaos_checkpoints_text(&calm), chaos_checkpoints_text(&e));
    assert_int_equal(chaos_ll(&e, "SELECT count(*) FROM qpo.jobs WHERE state <> 'succeeded'"), 0);
    chaos_teardown(&e);
}

/* The calm run every test compares with. */
static int group_setup(void **state) {
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "skipped under ASan: the experiments do not fit the CI budget sanitized (the "
                    "kill paths run sanitized in tests/queue and tests/trainer)\n");
    skip_all = 1;
    return 0;
#endif
    data = qpo_test_shared_data();
    if (!data) {
        fprintf(stderr, "skipped: ../shared/data is absent (TweetEval and SVAMP files needed)\n");
        skip_all = 1;
        return 0;
    }
    size = (chaos_size){.seeds = 2,
                        .loops = 2,
                        .epochs_first = 2,
                        .epochs_next = 1,
                        .batches = 2,
                        .batch_size = 6,
                        .test_size = 6};
    if (getenv("QPO_CHAOS_LONG") && atoi(getenv("QPO_CHAOS_LONG")) > 0)
        size = (chaos_size){.seeds = 3,
                            .loops = 3,
                            .epochs_first = 6,
                            .epochs_next = 3,
                            .batches = 3,
                            .batch_size = 16,
                            .test_size = 16};
    chaos_sim_start(&sim, data, "127.0.0.1:0", NULL);
    chaos_setup(&calm, pg, data, sim.url, &size, NULL);
    long t0 = now_ms();
    expect_done(&calm, run_quietly(&calm), "calm");
    calm_ms = now_ms() - t0;
    calm_s = (int)(calm_ms / 1000);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (!skip_all) {
        chaos_sim_stop(&sim);
        chaos_teardown(&calm);
    }
    return 0;
}

int main(void) {
    pg = qpo_pgtest_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kills_and_a_server_restart_change_nothing),
        cmocka_unit_test(test_llm_faults_change_nothing),
        cmocka_unit_test(test_target_down_then_resume),
    };
    if (getenv("QPO_CHAOS_ONLY")) /* e.g. QPO_CHAOS_ONLY='*llm*' */
        cmocka_set_test_filter(getenv("QPO_CHAOS_ONLY"));
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    qpo_pgtest_stop(pg);
    return rc;
}

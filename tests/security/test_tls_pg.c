/* TLS to PostgreSQL through libpq's sslmode: a cluster with ssl=on, a server certificate from
 * a CA made here with the openssl CLI, and pg_hba refusing every connection without TLS. qpo
 * (db migrate, submit, status) connects with sslmode=verify-full against that CA; a client
 * trusting another CA is refused, and so is one that does not ask for TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "pgtest.h"
#include "sched_util.h"

static char dir[] = "/tmp/qpo-tls-pg-XXXXXX";
static qpo_pg_cluster *cluster;

static void sh(const char *fmt, const char *arg) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg, arg, arg);
    if (system(cmd) != 0)
        fail_msg("failed: %s", cmd);
}

/* ca.crt signs server.crt (localhost, 127.0.0.1); other-ca.crt signs nothing used here. */
static void make_certificates(void) {
    sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout ca.key -out ca.crt -days 2 -subj /CN=qpo-test-ca 2>/dev/null && "
       "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=qpo-other-ca 2>/dev/null",
       dir);
    sh("cd '%s' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
       "-out server.csr -subj /CN=localhost 2>/dev/null && "
       "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
       "-out server.crt -days 2 -extfile san.ext 2>/dev/null",
       dir);
}

/* The server's files in its data directory, owned by the user the server runs as. */
static void install(const char *name, mode_t mode) {
    char from[300], to[400];
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s/%s", qpo_pg_cluster_dir(cluster), name);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(chmod(to, mode), 0);
    struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
    if (pw)
        assert_int_equal(chown(to, pw->pw_uid, pw->pw_gid), 0);
}

static void require_tls_in_hba(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/pg_hba.conf", qpo_pg_cluster_dir(cluster));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char old[65536];
    size_t n = fread(old, 1, sizeof old - 1, f);
    old[n] = '\0';
    fclose(f);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "hostnossl all all all reject\n%s", old);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0); /* as root the cluster runs as postgres */
    make_certificates();
    char cdir[300];
    snprintf(cdir, sizeof cdir, "%s/cluster", dir);
    qpo_err err = {0};
    cluster = qpo_pg_cluster_start(cdir, &err);
    if (!cluster)
        fail_msg("cluster: %s", err.msg);
    install("server.crt", 0644);
    install("server.key", 0600);
    require_tls_in_hba();
    PGconn *admin = test_connect(qpo_pg_cluster_conninfo(cluster));
    q_exec(admin, "ALTER SYSTEM SET ssl = on");
    q_exec(admin, "ALTER SYSTEM SET ssl_cert_file = 'server.crt'");
    q_exec(admin, "ALTER SYSTEM SET ssl_key_file = 'server.key'");
    q_exec(admin, "CREATE DATABASE tls");
    PQfinish(admin);
    qpo_pg_cluster_listen_tcp(cluster, "127.0.0.1");
    if (qpo_pg_cluster_halt(cluster, "fast", &err) < 0 || qpo_pg_cluster_resume(cluster, &err) < 0)
        fail_msg("restart with TLS: %s (%s)", err.msg, err.detail);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    qpo_pg_cluster_stop(cluster, true);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* host=localhost names the certificate's host; hostaddr is where it listens. */
static void tcp_conninfo(char *buf, size_t n, const char *ssl) {
    snprintf(buf, n, "host=localhost hostaddr=127.0.0.1 port=%d user=postgres dbname=tls %s",
             qpo_pg_cluster_port(cluster), ssl);
}

static void test_verify_full_against_the_ca(void **state) {
    (void)state;
    char info[1024], ssl[600];
    snprintf(ssl, sizeof ssl, "sslmode=verify-full sslrootcert=%s/ca.crt", dir);
    tcp_conninfo(info, sizeof info, ssl);
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
                     1);
    PQfinish(conn);
    /* qpo itself, through --db: migrate, submit, status. */
    qpo_run_result r;
    const char *migrate[] = {"db", "migrate", NULL};
    qpo_run(&r, info, NULL, migrate);
    if (r.exit_code != 0)
        fail_msg("qpo db migrate over TLS: %s", r.err);
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/exp.json", dir);
    FILE *f = fopen(cfg, "w");
    fputs("{\"tasks\": [\"svamp\"], \"settings\": [\"zero_shot\"], \"seeds\": [0], \"targets\": "
          "[{\"name\": \"t\", \"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\"}]}",
          f);
    fclose(f);
    const char *submit[] = {"submit", cfg, NULL};
    qpo_run(&r, info, NULL, submit);
    assert_int_equal(r.exit_code, 0);
    const char *status[] = {"status", NULL};
    qpo_run(&r, info, NULL, status);
    assert_int_equal(r.exit_code, 0);
}

static void test_require_encrypts(void **state) {
    (void)state;
    char info[1024];
    tcp_conninfo(info, sizeof info, "sslmode=require");
    PGconn *conn = test_connect(info);
    assert_int_equal(q_int(conn, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
                     1);
    PQfinish(conn);
}

static void test_refused_without_tls_or_with_another_ca(void **state) {
    (void)state;
    char info[1024], ssl[600];
    tcp_conninfo(info, sizeof info, "sslmode=disable");
    PGconn *plain = PQconnectdb(info);
    assert_int_not_equal(PQstatus(plain), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(plain), "no encryption"));
    PQfinish(plain);
    snprintf(ssl, sizeof ssl, "sslmode=verify-full sslrootcert=%s/other-ca.crt", dir);
    tcp_conninfo(info, sizeof info, ssl);
    PGconn *wrong = PQconnectdb(info);
    assert_int_not_equal(PQstatus(wrong), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(wrong), "certificate verify failed"));
    PQfinish(wrong);
    qpo_run_result r;
    const char *status[] = {"status", NULL};
    qpo_run(&r, info, NULL, status);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "cannot connect to PostgreSQL"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_full_against_the_ca),
        cmocka_unit_test(test_require_encrypts),
        cmocka_unit_test(test_refused_without_tls_or_with_another_ca),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

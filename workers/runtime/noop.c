/* The runtime's one built-in kind, noop (succeeds at once): what `qpo bench queue` and
 * bench/queue_vs_graphile.sh measure the queue with. The kinds that exist only for tests
 * (sleep, fail, test-insert) live in tests/kinds and never in the production binary. */
#include "handler.h"
#include "runtime.h"

static qpo_job_status run_noop(const qpo_job *job, qpo_job_ctx *ctx, qpo_job_outcome *out,
                               qpo_err *err) {
    return QPO_JOB_OK;
}

void qpo_runtime_register_builtin_handlers(void) {
    static const qpo_handler noop = {"noop", "cpu", run_noop};
    qpo_handler_register(&noop);
}

/* AdamW on one fixed batch without dropout: the reference experiment of pgdt_torch.py ref,
 * used by `qpo policy loss --steps` and the fixture tests. */
#include <stdio.h>

#include "train_internal.h"

int qpo_policy_fit_batch(qpo_policy *p, const qpo_batch *b, int steps, float lr, float wd,
                         float clip, qpo_loss *losses, char *errbuf, size_t errlen) {
    const qpo_backend *be = p->be;
    float *m = be->alloc(sizeof(float) * p->nparams), *v = be->alloc(sizeof(float) * p->nparams);
    qpo_step_opts so = {.lambda = 0.1f};
    int rc = 0;
    if (!m || !v) {
        snprintf(errbuf, errlen, "out of memory for the optimizer state");
        rc = -1;
    }
    qpo_loss l;
    if (!rc)
        rc = qpo_policy_forward(p, b, &so, &l, errbuf, errlen);
    for (int s = 1; !rc && s <= steps; s++) {
        qpo_policy_backward(p);
        float coef = qpo_policy_clip_coef(p, clip);
        be->adamw_update(p->params, p->grads, m, v, p->nparams, coef, lr, 0.9f, 0.999f, 1e-8f, wd,
                         s);
        rc = qpo_policy_forward(p, b, &so, &losses[s - 1], errbuf, errlen);
    }
    be->free(m);
    be->free(v);
    return rc;
}

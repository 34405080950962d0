/* Gradient clipping, exactly as torch.nn.utils.clip_grad_norm_ (the coefficient is applied
 * even when it clamps to 1). */
#include <math.h>

#include "model_internal.h"
#include "train.h"

float qpo_policy_clip_coef(qpo_policy *p, float max_norm) {
    double norm = sqrt(p->be->sumsq(p->grads, p->nparams));
    float coef = (float)(max_norm / (norm + 1e-6));
    return coef > 1.0f ? 1.0f : coef;
}

float qpo_policy_clip_grads(qpo_policy *p, float max_norm) {
    float coef = qpo_policy_clip_coef(p, max_norm);
    p->be->scale(p->grads, p->nparams, coef);
    return coef;
}

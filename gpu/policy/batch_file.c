/* Batch files in the layout `pgdt_torch.py ref` writes (batch.safetensors): query_ids,
 * query_mask, prompt_ids, prompt_mask [B,40] int32 and reward [B] fp32. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "records.h"
#include "safetensors.h"

static int get(const qpo_st_file *f, const char *name, qpo_st_dtype dt, int64_t B, int cols,
               void *dst, const char *path, char *errbuf, size_t errlen) {
    const qpo_st_tensor *t = qpo_st_find(f, name);
    int ok = t && t->dtype == dt && t->ndim == (cols ? 2 : 1) && t->shape[0] == B &&
             (!cols || t->shape[1] == cols);
    if (!ok) {
        snprintf(errbuf, errlen, "%s: tensor '%s' missing or not %s [%lld%s]", path, name,
                 dt == QPO_ST_I32 ? "int32" : "float32", (long long)B, cols ? ", 40" : "");
        return -1;
    }
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

/* Rewards are normalised to [0, 100] on D_0 and land near that range later; one beyond
 * 1e6 is a corrupt file, and 1e30 already makes the squared return error overflow to Inf. */
#define REWARD_ABS_MAX 1e6

static int rewards_finite(const float *r, int64_t B, const char *path, char *errbuf,
                          size_t errlen) {
    for (int64_t i = 0; i < B; i++)
        if (!isfinite(r[i]) || fabsf(r[i]) > REWARD_ABS_MAX) {
            snprintf(errbuf, errlen,
                     "%s: tensor 'reward' row %lld is %g: not a finite reward "
                     "within +-%g",
                     path, (long long)i, (double)r[i], REWARD_ABS_MAX);
            return -1;
        }
    return 0;
}

int qpo_batch_file_load(const char *path, qpo_records *out, char *errbuf, size_t errlen) {
    qpo_st_file *f = qpo_st_open(path, errbuf, errlen);
    if (!f)
        return -1;
    const qpo_st_tensor *r = qpo_st_find(f, "reward");
    int rc = -1;
    if (!r || r->ndim != 1 || r->shape[0] < 1) {
        snprintf(errbuf, errlen, "%s: no 1-d 'reward' tensor: not a policy batch file", path);
    } else if (qpo_records_alloc(out, (size_t)r->shape[0])) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
    } else {
        int64_t B = r->shape[0];
        rc = get(f, "query_ids", QPO_ST_I32, B, 40, out->query_ids, path, errbuf, errlen) ||
                     get(f, "query_mask", QPO_ST_I32, B, 40, out->query_mask, path, errbuf,
                         errlen) ||
                     get(f, "prompt_ids", QPO_ST_I32, B, 40, out->prompt_ids, path, errbuf,
                         errlen) ||
                     get(f, "prompt_mask", QPO_ST_I32, B, 40, out->prompt_mask, path, errbuf,
                         errlen) ||
                     get(f, "reward", QPO_ST_F32, B, 0, out->reward, path, errbuf, errlen) ||
                     rewards_finite(out->reward, B, path, errbuf, errlen)
                 ? -1
                 : 0;
        if (rc)
            qpo_records_free(out);
    }
    qpo_st_close(f);
    return rc;
}

qpo_batch qpo_records_batch(const qpo_records *r, size_t first, int B) {
    size_t q = first * QPO_PGDT_QLEN;
    return (qpo_batch){B,
                       r->query_ids + q,
                       r->query_mask + q,
                       r->prompt_ids + q,
                       r->prompt_mask + q,
                       r->reward + first};
}

/* The released-D_0 importer (`qpo data import-d0`) on arbitrary files: the first byte picks
 * the task and setting; the rest is the file. Loading refuses what is not a JSON array of
 * records; each record becomes the row the import writes, with finite rewards, or a usage
 * error naming the field. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "import.h"
#include "reward_formula.h"

static const char *const tasks[] = {"tweet_emotion", "gsm8k", "svamp", "ag_news"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    char path[256];
    snprintf(path, sizeof path, "%s/d0.json", fuzz_scratch_dir());
    fuzz_write_file(path, data + 1, size - 1);
    qpo_d0_import opts = {.file = path,
                          .task = tasks[data[0] % 4],
                          .setting = data[0] & 4 ? "few_shot" : "zero_shot",
                          .target = "fuzz",
                          .model_key = data[0] & 8 ? "llama7b" : NULL,
                          .avg_acc_weight = data[0] & 16 ? 0 : QPO_REWARD_AVG_ACC_WEIGHT};
    qpo_err err = {0};
    json_t *records = qpo_d0_load(path, &err);
    if (!records) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        qpo_err rerr = {0};
        json_t *row = qpo_d0_record(&opts, rec, &rerr);
        if (!row) {
            if (!rerr.msg[0])
                abort();
            continue;
        }
        if (!isfinite(json_number_value(json_object_get(row, "raw_reward"))))
            abort();
        json_decref(row);
    }
    json_decref(records);
    return 0;
}

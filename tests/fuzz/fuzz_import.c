/* The task importers (`qpo data import`) on arbitrary files: the first byte picks the task, the
 * second the format (jsonl, json, csv, tweeteval) and --skip-bad; the rest is the file (for
 * tweeteval: the text file, a NUL, then the labels file). Each read either maps rows to items
 * (then deals them into splits) or refuses with a usage error naming the file; never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz.h"

static const char *const tasks[] = {"ag_news",   "boolq",     "imdb",  "tweet_emotion",
                                    "cosmos_qa", "hellaswag", "gsm8k", "svamp"};
static const char *const formats[] = {"jsonl", "json", "csv", "tweeteval"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    const char *task = tasks[data[0] % 8];
    const char *format = formats[data[1] % 4];
    bool skip_bad = data[1] & 4;
    data += 2, size -= 2;
    char path[256], labels[256];
    snprintf(path, sizeof path, "%s/train_text.txt", fuzz_scratch_dir());
    if (!strcmp(format, "tweeteval")) {
        const uint8_t *nul = memchr(data, 0, size);
        size_t text = nul ? (size_t)(nul - data) : size;
        snprintf(labels, sizeof labels, "%s/train_labels.txt", fuzz_scratch_dir());
        fuzz_write_file(path, data, text);
        fuzz_write_file(labels, nul ? nul + 1 : data + size, nul ? size - text - 1 : 0);
    } else {
        fuzz_write_file(path, data, size);
    }
    qpo_item_list list = {0};
    qpo_err err = {0};
    if (qpo_read_dataset(task, path, format, "train", skip_bad, &list, &err) == 0) {
        for (size_t i = 0; i < list.n; i++)
            if (!list.items[i].query || !list.items[i].fields)
                abort();
        qpo_err split_err = {0};
        qpo_items_assign_splits(task, &list, &split_err);
    } else if (!err.msg[0]) {
        abort();
    }
    qpo_item_list_free(&list);
    return 0;
}

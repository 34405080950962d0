#ifndef QPO_OBSERVE_H
#define QPO_OBSERVE_H

/* The flags every long-running process takes (qpo scheduler, worker, sim-llm), parsed and
 * applied in one place: --log-format text|json, --log-level LEVEL, --metrics-listen ADDR. */

#include <getopt.h>

#include "error.h"

enum { QPO_OBS_LOG_FORMAT = 0x4f00, QPO_OBS_LOG_LEVEL, QPO_OBS_METRICS_LISTEN };

/* Entries for a getopt_long table. */
#define QPO_OBS_LONG_OPTIONS                                                                       \
    {"log-format", required_argument, NULL, QPO_OBS_LOG_FORMAT},                                   \
        {"log-level", required_argument, NULL, QPO_OBS_LOG_LEVEL}, {                               \
        "metrics-listen", required_argument, NULL, QPO_OBS_METRICS_LISTEN                          \
    }

#define QPO_OBS_USAGE                                                                              \
    "  --log-format text|json  stderr lines as text (default) or one JSON object per line\n"       \
    "  --log-level LEVEL       debug, info (default), warn or error\n"                             \
    "  --metrics-listen ADDR   serve Prometheus metrics at http://ADDR/metrics (HOST:PORT,\n"      \
    "                          :PORT or PORT; docs/observability.md)\n"

typedef struct qpo_obs {
    const char *log_format, *log_level, *metrics_listen;
} qpo_obs;

/* True when opt is one of these flags (its value kept in *o). */
int qpo_obs_option(int opt, const char *arg, qpo_obs *o);
/* Applies the log flags, then starts serving metrics when asked. */
int qpo_obs_start(const qpo_obs *o, qpo_err *err);
/* Stops serving metrics (a no-op when not serving). */
void qpo_obs_stop(void);

#endif

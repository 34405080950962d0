#include "observe.h"

#include "log.h"
#include "metrics.h"

int qpo_obs_option(int opt, const char *arg, qpo_obs *o) {
    switch (opt) {
    case QPO_OBS_LOG_FORMAT:
        o->log_format = arg;
        return 1;
    case QPO_OBS_LOG_LEVEL:
        o->log_level = arg;
        return 1;
    case QPO_OBS_METRICS_LISTEN:
        o->metrics_listen = arg;
        return 1;
    default:
        return 0;
    }
}

int qpo_obs_start(const qpo_obs *o, qpo_err *err) {
    if (qpo_log_configure(o->log_format, o->log_level, err) < 0)
        return -1;
    return o->metrics_listen ? qpo_metrics_listen(o->metrics_listen, err) : 0;
}

void qpo_obs_stop(void) {
    qpo_metrics_stop();
}

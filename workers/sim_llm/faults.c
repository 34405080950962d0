#include "faults.h"

#include "simhash.h"

int sim_faults_check(const sim_faults *f, qpo_err *err) {
    const struct {
        const char *flag;
        double v;
    } rates[] = {{"--drop-rate", f->drop_rate},
                 {"--fail-rate", f->fail_rate},
                 {"--truncate-rate", f->truncate_rate},
                 {"--malformed-rate", f->malformed_rate},
                 {"--hang-rate", f->hang_rate}};
    double sum = 0;
    for (int i = 0; i < 5; i++) {
        if (!(rates[i].v >= 0 && rates[i].v <= 1)) {
            qpo_err_set(err, QPO_EXIT_USAGE, "%s must be a fraction in [0, 1]", rates[i].flag);
            qpo_err_detail(err, "%s %g", rates[i].flag, rates[i].v);
            return -1;
        }
        sum += rates[i].v;
    }
    if (sum > 1 + 1e-9) {
        qpo_err_set(err, QPO_EXIT_USAGE, "fault rates add up to more than 1");
        qpo_err_detail(err, "drop %g + fail %g + truncate %g + malformed %g + hang %g = %g",
                       f->drop_rate, f->fail_rate, f->truncate_rate, f->malformed_rate,
                       f->hang_rate, sum);
        qpo_err_hint(err, "each request gets at most one fault; lower the rates");
        return -1;
    }
    for (int i = 0; i < f->n_fail_status; i++) {
        int st = f->fail_status[i];
        if (st != 429 && st != 500 && st != 503) {
            qpo_err_set(err, QPO_EXIT_USAGE, "--fail-status must be 429, 500 or 503");
            qpo_err_detail(err, "--fail-status %d", st);
            return -1;
        }
    }
    return 0;
}

int sim_fault_status(const sim_faults *f, unsigned variant) {
    return f->n_fail_status > 0 ? f->fail_status[variant % (unsigned)f->n_fail_status] : 503;
}

sim_fault sim_fault_for(const sim_faults *f, uint64_t seq, unsigned *variant) {
    uint64_t h = sim_mix(f->seed, seq);
    double u = sim_unit(h);
    *variant = (unsigned)(h & 0xFF);
    if ((u -= f->drop_rate) < 0)
        return SIM_FAULT_DROP;
    if ((u -= f->fail_rate) < 0)
        return SIM_FAULT_FAIL;
    if ((u -= f->truncate_rate) < 0)
        return SIM_FAULT_TRUNCATE;
    if ((u -= f->malformed_rate) < 0)
        return SIM_FAULT_MALFORMED;
    if ((u -= f->hang_rate) < 0)
        return SIM_FAULT_HANG;
    return SIM_FAULT_NONE;
}

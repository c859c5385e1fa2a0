/*
 * The stage behind the ABI fuzz target: every answer it gives the host (verdicts, reason codes
 * and texts, narrowed events, eligibility, selections, retry advice, grants, close reasons,
 * stats and control answers, upstream status bits) is read from a tape of fuzzer bytes set with sss_fuzz_set_tape.
 * It keeps the ABI's memory rules (it never writes past a buffer it was given): those cannot be
 * checked by a host, only the values can.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "sssonector_stage.h"

#define EXPORT __attribute__((visibility("default")))

static const uint8_t *tape;
static size_t tape_len, tape_pos;

EXPORT void sss_fuzz_set_tape(const uint8_t *bytes, size_t len) { tape = bytes; tape_len = len; tape_pos = 0; }

static uint64_t take(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | (tape_pos < tape_len ? tape[tape_pos++] : 0);
    return v;
}

static void write_tape(const sss_sink *sink) {
    size_t n = (size_t)take(1) * 4;
    if (n > tape_len - tape_pos) n = tape_len - tape_pos;
    if (n) sink->write(sink->ctx, (const char *)(tape + tape_pos), n);
    tape_pos += n;
}

static int instance_token;

static sss_status fz_create(const sss_create_args *a, sss_create_result *out) {
    (void)a;
    out->inst = &instance_token;
    out->events = take(2);
    out->tick_interval_ms = 0;
    return SSS_OK;
}

static void fz_destroy(void *inst) { (void)inst; }

static uint32_t fz_open(void *inst, const sss_conn *c, void **slot, sss_open_result *out) {
    (void)inst; (void)c; (void)slot;
    out->reason_code = (uint32_t)take(4);
    out->events = take(2);
    size_t n = (size_t)take(1);
    if (out->reason_buf && out->reason_cap) {
        if (n >= out->reason_cap) n = (size_t)out->reason_cap - 1;
        for (size_t i = 0; i < n; i++) out->reason_buf[i] = (char)take(1);
        out->reason_buf[n] = 0;
    }
    if (out->struct_size >= offsetof(sss_open_result, fallback_reason_code) + sizeof(uint32_t)) {
        /* since 1.3: a pending verdict's timeout and fallback (any values, valid or not) */
        out->pending_timeout_ns = take(4);
        out->fallback_verdict = (uint32_t)take(1);
        out->fallback_reason_code = (uint32_t)take(4);
    }
    return (uint32_t)take(1);
}

static void fz_filter(void *inst, const sss_conn *c, void **slot, const sss_upstream_set *set, uint8_t *eligible) {
    (void)inst; (void)c; (void)slot;
    for (uint32_t i = 0; i < set->count; i++) eligible[i] = (uint8_t)take(1);
}

static uint32_t fz_select(void *inst, const sss_conn *c, void **slot, const sss_upstream_set *set,
                          const uint8_t *eligible, uint32_t *out_index) {
    (void)inst; (void)c; (void)slot; (void)set; (void)eligible;
    *out_index = (uint32_t)take(4);
    return (uint32_t)take(1);
}

static void fz_result(void *inst, const sss_conn *c, void **slot, const sss_upstream_result *r, sss_retry_decision *d) {
    (void)inst; (void)c; (void)slot; (void)r;
    d->action = (uint32_t)take(1);
    d->retry_after_ns = take(8);
}

static uint32_t fz_data(void *inst, const sss_conn *c, void **slot, const sss_data_args *a, sss_data_result *out) {
    (void)inst; (void)c; (void)slot;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < a->slice_count; i++) {
        for (uint64_t k = 0; k < a->slices[i].len; k++) sum += a->slices[i].ptr[k];
    }
    (void)sum;
    out->granted = take(8);
    out->retry_after_ns = take(8);
    out->close_reason = (uint32_t)take(4);
    return (uint32_t)take(1);
}

static void fz_close(void *inst, const sss_conn *c, void *slot, const sss_close_info *info) {
    (void)inst; (void)c; (void)slot; (void)info;
}

static sss_status fz_stats(void *inst, const sss_sink *sink) {
    (void)inst;
    write_tape(sink);
    return (sss_status)(int8_t)take(1);
}

static sss_status fz_control(void *inst, sss_str command, const sss_sink *sink) {
    (void)inst; (void)command;
    write_tape(sink);
    return (sss_status)(int8_t)take(1);
}

static void fz_status(void *inst, const sss_upstream_set *set, uint64_t now, uint8_t *status) {
    (void)inst; (void)now;
    for (uint32_t i = 0; i < set->count; i++) status[i] = (uint8_t)take(1);  /* any bits, known or not */
}

static const sss_stage_type types[] = {{
    .struct_size = sizeof(sss_stage_type), .name = "fuzz", .description = "answers from a tape of fuzzer bytes",
    .supported_events = SSS_EV_OPEN | SSS_EV_FILTER_UPSTREAMS | SSS_EV_SELECT_UPSTREAM | SSS_EV_UPSTREAM_RESULT |
                        SSS_EV_DATA_UP | SSS_EV_DATA_DOWN | SSS_EV_DATA_SLICES | SSS_EV_CLOSE | SSS_EV_STATS | SSS_EV_CONTROL |
                        SSS_EV_UPSTREAM_STATUS,
    .create = fz_create, .destroy = fz_destroy, .on_open = fz_open, .on_filter_upstreams = fz_filter,
    .on_select_upstream = fz_select, .on_upstream_result = fz_result, .on_data = fz_data, .on_close = fz_close,
    .on_stats = fz_stats, .on_control = fz_control, .on_upstream_status = fz_status,
}};

static const sss_module module = {
    .struct_size = sizeof(sss_module), .abi_major = SSS_ABI_MAJOR, .abi_minor = SSS_ABI_MINOR,
    .module_name = "fuzzstage", .module_version = "1.0.0",
    .type_count = 1, .type_stride = sizeof(sss_stage_type), .types = types,
};

EXPORT sss_status sss_stage_entry(const sss_host_api *host, const sss_module **out, char *err, uint64_t cap) {
    (void)host; (void)err; (void)cap;
    *out = &module;
    return SSS_OK;
}

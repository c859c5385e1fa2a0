/*
 * A stage that breaks the ABI's rules on purpose, for the containment tests. Its config is a
 * JSON object whose "mode" string picks the fault (matched with strstr: this is a fixture, not
 * a JSON parser):
 *   control_garbage   control answers "{oops" with SSS_OK
 *   control_empty     control answers nothing with SSS_OK
 *   control_status    control returns 42, a status the ABI does not define
 *   stats_garbage     stats are "not json at all"
 *   open_verdict      on_open returns 7 (neither ACCEPT nor REJECT)
 *   post_foreign      on_open posts a close to every earlier connection id (1 ... id-1)
 *   post_bad_reason   on_open posts a close to its own connection with reason 999
 *   greedy_grant      on_data grants twice what was offered, retry_after 2^64-1 ns
 *   silent_create     create fails with SSS_E_INTERNAL and no text
 *   crash_open        on_open writes through a NULL pointer (the process dies)
 * Every mode but the open and data ones accepts connections and passes every byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sssonector_stage.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct bad { char mode[32]; const sss_host_api *host; } bad;

static int is(const bad *b, const char *mode) { return strcmp(b->mode, mode) == 0; }

static sss_status bad_create(const sss_create_args *a, sss_create_result *out) {
    bad *b = calloc(1, sizeof(bad));
    if (!b) return SSS_E_NOMEM;
    b->host = a->host;
    const char *modes[] = {"control_garbage", "control_empty", "control_status", "stats_garbage", "open_verdict",
                           "post_foreign", "post_bad_reason", "greedy_grant", "silent_create", "crash_open"};
    char config[256] = {0};
    memcpy(config, a->config_json.ptr, a->config_json.len < 255 ? a->config_json.len : 255);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strstr(config, modes[i])) snprintf(b->mode, sizeof b->mode, "%s", modes[i]);
    }
    if (is(b, "silent_create")) { free(b); return SSS_E_INTERNAL; }
    out->inst = b;
    if (!is(b, "greedy_grant")) out->events &= ~(SSS_EV_DATA_UP | SSS_EV_DATA_DOWN);
    return SSS_OK;
}

static void bad_destroy(void *inst) { free(inst); }

static uint32_t bad_open(void *inst, const sss_conn *c, void **slot, sss_open_result *out) {
    (void)slot; (void)out;
    bad *b = inst;
    if (is(b, "open_verdict")) return 7;
    if (is(b, "crash_open")) {
        volatile int *nowhere = (volatile int *)(uintptr_t)(c->accepted_ns * 0);
        *nowhere = 1;
    }
    if (is(b, "post_foreign")) {
        for (uint64_t id = 1; id < c->id; id++) b->host->conn_post_close(b->host->host_ctx, id, SSS_REASON_POLICY);
    }
    if (is(b, "post_bad_reason")) b->host->conn_post_close(b->host->host_ctx, c->id, 999);
    return SSS_ACCEPT;
}

static uint32_t bad_data(void *inst, const sss_conn *c, void **slot, const sss_data_args *args, sss_data_result *out) {
    (void)inst; (void)c; (void)slot;
    out->granted = args->avail * 2 + 1;
    out->retry_after_ns = UINT64_MAX;
    return SSS_DATA_CONTINUE;
}

static sss_status bad_stats(void *inst, const sss_sink *sink) {
    const char *text = is(inst, "stats_garbage") ? "not json at all" : "{\"ok\":true}";
    return sink->write(sink->ctx, text, strlen(text));
}

static sss_status bad_control(void *inst, sss_str command, const sss_sink *sink) {
    (void)command;
    bad *b = inst;
    if (is(b, "control_garbage")) { sink->write(sink->ctx, "{oops", 5); return SSS_OK; }
    if (is(b, "control_empty")) return SSS_OK;
    if (is(b, "control_status")) { sink->write(sink->ctx, "{}", 2); return 42; }
    sink->write(sink->ctx, "{\"ok\":true}", 11);
    return SSS_OK;
}

static const sss_stage_type types[] = {{
    .struct_size = sizeof(sss_stage_type), .name = "misbehaving", .description = "breaks the ABI on purpose",
    .supported_events = SSS_EV_OPEN | SSS_EV_DATA_UP | SSS_EV_DATA_DOWN | SSS_EV_STATS | SSS_EV_CONTROL,
    .create = bad_create, .destroy = bad_destroy, .on_open = bad_open, .on_data = bad_data,
    .on_stats = bad_stats, .on_control = bad_control,
}};

static const sss_module module = {
    .struct_size = sizeof(sss_module), .abi_major = SSS_ABI_MAJOR, .abi_minor = SSS_ABI_MINOR,
    .module_name = "misbehaving", .module_version = "1.0.0",
    .type_count = 1, .type_stride = sizeof(sss_stage_type), .types = types,
};

EXPORT sss_status sss_stage_entry(const sss_host_api *host, const sss_module **out, char *err, uint64_t cap) {
    (void)host; (void)err; (void)cap;
    *out = &module;
    return SSS_OK;
}

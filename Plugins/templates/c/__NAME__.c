/*
 * __NAME__: a SSSonector stage in plain C, written by `sssonector plugin new`.
 *
 * Paces each connection: at most `bytes_per_second` bytes per second in each direction, with
 * a burst of one second's worth. It shows a data hook that grants part of what is offered and
 * asks to be offered the rest again after a delay (the host stops reading meanwhile: TCP
 * backpressure, no byte dropped), per-connection state kept in the connection's slot (created
 * at open, freed at close), config validation with an error naming the key, and stats.
 *
 * Config: { "bytes_per_second": 1048576 }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sssonector_stage.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct stage {
    const sss_host_api *host;
    double rate;                 /* bytes per second, per direction */
    uint64_t connections, bytes, delayed;  /* updated with __atomic builtins from every loop */
} stage;

/* One connection's buckets, one per direction. */
typedef struct pace {
    double tokens[2];
    uint64_t updated_ns[2];
} pace;

static sss_status create(const sss_create_args *a, sss_create_result *out) {
    double rate = 1048576;
    const char *key = strstr(a->config_json.ptr, "\"bytes_per_second\"");
    if (key) {
        const char *colon = strchr(key, ':');
        char *end = NULL;
        rate = colon ? strtod(colon + 1, &end) : 0;
        if (!colon || end == colon + 1 || rate < 1 || rate > 1e15) {
            snprintf(a->err_buf, (size_t)a->err_cap, "bytes_per_second: expected a number from 1 to 1e15");
            return SSS_E_CONFIG;
        }
    }
    stage *s = calloc(1, sizeof *s);
    if (!s) return SSS_E_NOMEM;
    s->host = a->host;
    s->rate = rate;
    out->inst = s;
    return SSS_OK;
}

static void destroy(void *inst) { free(inst); }

static uint32_t on_open(void *inst, const sss_conn *c, void **slot, sss_open_result *out) {
    (void)out;
    stage *s = inst;
    pace *p = calloc(1, sizeof *p);
    if (!p) return SSS_REJECT;   /* reason 0 becomes "policy" */
    p->tokens[0] = p->tokens[1] = s->rate;
    p->updated_ns[0] = p->updated_ns[1] = c->now_ns;
    *slot = p;
    __atomic_add_fetch(&s->connections, 1, __ATOMIC_RELAXED);
    return SSS_ACCEPT;
}

static uint32_t on_data(void *inst, const sss_conn *c, void **slot, const sss_data_args *args, sss_data_result *out) {
    (void)c;
    stage *s = inst;
    pace *p = *slot;
    uint32_t d = args->dir;
    double elapsed = (double)(args->now_ns - p->updated_ns[d]) / 1e9;
    p->tokens[d] += elapsed * s->rate;
    if (p->tokens[d] > s->rate) p->tokens[d] = s->rate;
    p->updated_ns[d] = args->now_ns;
    uint64_t grant = args->avail;
    if ((double)grant > p->tokens[d]) {
        grant = (uint64_t)p->tokens[d];
        /* Offer the rest again once a 1460-byte segment's worth (or all of it) has been earned. */
        double missing = (double)(args->avail - grant < 1460 ? args->avail - grant : 1460);
        out->retry_after_ns = (uint64_t)(missing / s->rate * 1e9) + 1;
        __atomic_add_fetch(&s->delayed, 1, __ATOMIC_RELAXED);
    }
    p->tokens[d] -= (double)grant;
    out->granted = grant;
    __atomic_add_fetch(&s->bytes, grant, __ATOMIC_RELAXED);
    return SSS_DATA_CONTINUE;
}

static void on_close(void *inst, const sss_conn *c, void *slot, const sss_close_info *info) {
    (void)inst; (void)c; (void)info;
    free(slot);
}

static sss_status on_stats(void *inst, const sss_sink *sink) {
    stage *s = inst;
    char json[160];
    int n = snprintf(json, sizeof json, "{\"bytes_per_second\":%.0f,\"connections\":%llu,\"bytes\":%llu,\"delayed\":%llu}",
                     s->rate, (unsigned long long)__atomic_load_n(&s->connections, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&s->bytes, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&s->delayed, __ATOMIC_RELAXED));
    return sink->write(sink->ctx, json, (uint64_t)n);
}

static const sss_stage_type types[] = {{
    .struct_size = sizeof(sss_stage_type), .name = "__NAME__", .description = "paces each connection to bytes_per_second",
    .supported_events = SSS_EV_OPEN | SSS_EV_DATA_UP | SSS_EV_DATA_DOWN | SSS_EV_CLOSE | SSS_EV_STATS,
    .create = create, .destroy = destroy, .on_open = on_open, .on_data = on_data, .on_close = on_close,
    .on_stats = on_stats,
}};

static const sss_module module = {
    .struct_size = sizeof(sss_module), .abi_major = SSS_ABI_MAJOR, .abi_minor = SSS_ABI_MINOR,
    .module_name = "__NAME__", .module_version = "0.1.0",
    .type_count = 1, .type_stride = sizeof(sss_stage_type), .types = types,
};

EXPORT sss_status sss_stage_entry(const sss_host_api *host, const sss_module **out, char *err, uint64_t cap) {
    (void)host; (void)err; (void)cap;
    *out = &module;
    return SSS_OK;
}

/*
 * Fixture stage libraries for the ABI tests. One source, one variant per -D flag:
 *   (none)            a well-formed 1.x plugin built against the header it is compiled with
 *                     (with -I abi-1.0: a plugin frozen at ABI 1.0, which every host must load)
 *   FUTURE_MINOR      built for a newer minor: larger module and type descriptors with fields
 *                     this host does not know, and an event bit it does not know
 *   WRONG_MAJOR       claims ABI 2.0                                     -> refused
 *   NO_ENTRY          exports no sss_stage_entry                          -> refused
 *   MISSING_HOOK      declares the data events but has no on_data        -> refused
 *   ENTRY_ERROR       the entry fails with a message                      -> refused
 *   UNDEFINED_SYMBOL  calls a function no library defines                 -> refused at load
 *   CONFIG_CHECK      create rejects any config that is not "{}"
 *
 * The stage "fixture" accepts every connection and counts opens and closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sssonector_stage.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct counts { uint64_t opens, closes; } counts;

static sss_status fx_create(const sss_create_args *a, sss_create_result *out) {
#ifdef CONFIG_CHECK
    if (a->config_json.len != 2 || memcmp(a->config_json.ptr, "{}", 2) != 0) {
        snprintf(a->err_buf, (size_t)a->err_cap, "threshold: expected nothing, this fixture takes no config");
        return SSS_E_CONFIG;
    }
#else
    (void)a;
#endif
    out->inst = calloc(1, sizeof(counts));
    return out->inst ? SSS_OK : SSS_E_NOMEM;
}

static void fx_destroy(void *inst) { free(inst); }

static uint32_t fx_open(void *inst, const sss_conn *c, void **slot, sss_open_result *out) {
    (void)c; (void)slot; (void)out;
    __atomic_add_fetch(&((counts *)inst)->opens, 1, __ATOMIC_RELAXED);
    return SSS_ACCEPT;
}

static void fx_close(void *inst, const sss_conn *c, void *slot, const sss_close_info *info) {
    (void)c; (void)slot; (void)info;
    __atomic_add_fetch(&((counts *)inst)->closes, 1, __ATOMIC_RELAXED);
}

static sss_status fx_stats(void *inst, const sss_sink *sink) {
    char json[96];
    counts *k = inst;
    int n = snprintf(json, sizeof json, "{\"opens\":%llu,\"closes\":%llu}",
                     (unsigned long long)k->opens, (unsigned long long)k->closes);
    return sink->write(sink->ctx, json, (uint64_t)n);
}

#ifdef UNDEFINED_SYMBOL
extern void sss_fixture_function_that_no_library_defines(void);
#endif

#ifdef FUTURE_MINOR
/* What a plugin built against a later 1.x header looks like to this host: appended fields. */
typedef struct future_type {
    sss_stage_type v1;
    void (*on_something_new)(void *inst);
    uint64_t new_flags;
} future_type;
typedef struct future_module {
    sss_module v1;
    const char *homepage;
    uint64_t new_caps;
} future_module;
static const future_type types[] = {{
    .v1 = {
        .struct_size = sizeof(future_type), .name = "fixture", .description = "fixture from a newer minor",
        .supported_events = SSS_EV_OPEN | SSS_EV_CLOSE | SSS_EV_STATS | (1ull << 40),
        .create = fx_create, .destroy = fx_destroy, .on_open = fx_open, .on_close = fx_close,
        .on_stats = fx_stats,
    },
    .on_something_new = NULL, .new_flags = 7,
}};
__attribute__((unused)) static const future_module module = {
    .v1 = {
        .struct_size = sizeof(future_module), .abi_major = SSS_ABI_MAJOR, .abi_minor = SSS_ABI_MINOR + 5,
        .module_name = "fixture-future", .module_version = "9.9.9", .type_count = 1,
        .type_stride = sizeof(future_type), .types = &types[0].v1,
    },
    .homepage = "https://example.invalid", .new_caps = 1,
};
#else
static const sss_stage_type types[] = {{
    .struct_size = sizeof(sss_stage_type), .name = "fixture", .description = "counts opens and closes",
#ifdef MISSING_HOOK
    .supported_events = SSS_EV_OPEN | SSS_EV_DATA_UP | SSS_EV_CLOSE,
#else
    .supported_events = SSS_EV_OPEN | SSS_EV_CLOSE | SSS_EV_STATS,
#endif
    .create = fx_create, .destroy = fx_destroy, .on_open = fx_open, .on_close = fx_close,
    .on_stats = fx_stats,
}};
__attribute__((unused)) static const sss_module module = {
    .struct_size = sizeof(sss_module),
#ifdef WRONG_MAJOR
    .abi_major = SSS_ABI_MAJOR + 1,
#else
    .abi_major = SSS_ABI_MAJOR,
#endif
    .abi_minor = SSS_ABI_MINOR, .module_name = "fixture", .module_version = "1.0.0",
    .type_count = 1, .type_stride = sizeof(sss_stage_type), .types = types,
};
#endif

#ifdef NO_ENTRY
EXPORT int not_the_entry(void) { return 0; }
#else
EXPORT sss_status sss_stage_entry(const sss_host_api *host, const sss_module **out, char *err, uint64_t cap) {
    (void)host;
#ifdef ENTRY_ERROR
    (void)out;
    snprintf(err, (size_t)cap, "license file /etc/fixture.lic is missing");
    return SSS_E_INTERNAL;
#else
    (void)err; (void)cap;
#ifdef UNDEFINED_SYMBOL
    sss_fixture_function_that_no_library_defines();
#endif
    *out = (const sss_module *)&module;
    return SSS_OK;
#endif
}
#endif

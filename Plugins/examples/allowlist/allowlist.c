/*
 * allowlist: an example SSSonector stage in plain C (no Swift, no libraries beyond libc).
 *
 * Rejects connections whose client address is not inside one of the configured CIDR blocks,
 * with reason "policy" and a text naming the client. Shows: the entry symbol, the module and
 * type descriptors, config validation with error text, per-instance state shared by every
 * event loop (atomics), a stats hook writing JSON through the host sink, and logging.
 *
 * Config: { "allow": ["10.0.0.0/8", "127.0.0.1", "::1/128"] }
 * Build:  Plugins/examples/build-c-example.sh   (cc -shared -fPIC, against the ABI header)
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sssonector_stage.h"

#define MAX_BLOCKS 256

typedef struct cidr {
    uint16_t family;     /* SSS_AF_INET or SSS_AF_INET6 */
    uint16_t prefix;     /* bits */
    uint8_t addr[16];
} cidr;

typedef struct allowlist {
    const sss_host_api *host;
    uint32_t count;
    cidr blocks[MAX_BLOCKS];
    uint64_t allowed;    /* updated with __atomic builtins: hooks run on every loop */
    uint64_t rejected;
} allowlist;

static void set_error(const sss_create_args *a, const char *text) {
    if (a->err_buf && a->err_cap > 0) {
        snprintf(a->err_buf, (size_t)a->err_cap, "%s", text);
    }
}

static int parse_cidr(const char *text, cidr *out) {
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof addr) return 0;
    memcpy(addr, text, n);
    addr[n] = 0;
    memset(out, 0, sizeof *out);
    int max;
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = SSS_AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = SSS_AF_INET6;
        max = 128;
    } else {
        return 0;
    }
    if (slash) {
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (*end != 0 || end == slash + 1 || bits < 0 || bits > max) return 0;
        out->prefix = (uint16_t)bits;
    } else {
        out->prefix = (uint16_t)max;
    }
    return 1;
}

static int contains(const cidr *block, const sss_addr *peer) {
    if (block->family != peer->family) return 0;
    uint16_t bits = block->prefix;
    for (int i = 0; bits > 0; i++) {
        uint8_t mask = bits >= 8 ? 0xFF : (uint8_t)(0xFF << (8 - bits));
        if ((block->addr[i] & mask) != (peer->addr[i] & mask)) return 0;
        bits = bits >= 8 ? bits - 8 : 0;
    }
    return 1;
}

/* A small scanner for the one shape this stage accepts: {"allow": ["...", ...]}. */
static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *read_string(const char *p, char *out, size_t cap) {
    if (*p != '"') return NULL;
    p++;
    size_t n = 0;
    while (*p && *p != '"') {
        if (*p == '\\' || n + 1 >= cap) return NULL;
        out[n++] = *p++;
    }
    if (*p != '"') return NULL;
    out[n] = 0;
    return p + 1;
}

static sss_status parse_config(const sss_create_args *a, allowlist *list) {
    char item[128], msg[256];
    const char *p = skip_space(a->config_json.ptr ? a->config_json.ptr : "{}");
    if (*p != '{') { set_error(a, "config: expected an object"); return SSS_E_CONFIG; }
    p = skip_space(p + 1);
    int seen_allow = 0;
    while (*p != '}') {
        char key[64];
        p = read_string(p, key, sizeof key);
        if (!p) { set_error(a, "config: expected a quoted key"); return SSS_E_CONFIG; }
        if (strcmp(key, "allow") != 0) {
            snprintf(msg, sizeof msg, "%s: unknown key (expected one of: allow)", key);
            set_error(a, msg);
            return SSS_E_CONFIG;
        }
        p = skip_space(p);
        if (*p != ':') { set_error(a, "config: expected ':'"); return SSS_E_CONFIG; }
        p = skip_space(p + 1);
        if (*p != '[') { set_error(a, "allow: expected an array of CIDR strings"); return SSS_E_CONFIG; }
        p = skip_space(p + 1);
        while (*p != ']') {
            const char *next = read_string(p, item, sizeof item);
            if (!next) {
                snprintf(msg, sizeof msg, "allow[%u]: expected a CIDR string such as \"10.0.0.0/8\"", list->count);
                set_error(a, msg);
                return SSS_E_CONFIG;
            }
            if (list->count >= MAX_BLOCKS || !parse_cidr(item, &list->blocks[list->count])) {
                snprintf(msg, sizeof msg, "allow[%u]: \"%s\" is not an IPv4 or IPv6 address or CIDR block (at most %d blocks)",
                         list->count, item, MAX_BLOCKS);
                set_error(a, msg);
                return SSS_E_CONFIG;
            }
            list->count++;
            p = skip_space(next);
            if (*p == ',') p = skip_space(p + 1);
            else if (*p != ']') { set_error(a, "allow: expected ',' or ']'"); return SSS_E_CONFIG; }
        }
        seen_allow = 1;
        p = skip_space(p + 1);
        if (*p == ',') p = skip_space(p + 1);
        else if (*p != '}') { set_error(a, "config: expected ',' or '}'"); return SSS_E_CONFIG; }
    }
    if (!seen_allow) { set_error(a, "allow: required array of CIDR blocks is missing"); return SSS_E_CONFIG; }
    return SSS_OK;
}

static sss_status allow_create(const sss_create_args *a, sss_create_result *out) {
    allowlist *list = calloc(1, sizeof *list);
    if (!list) return SSS_E_NOMEM;
    sss_status st = parse_config(a, list);
    if (st != SSS_OK) { free(list); return st; }
    list->host = a->host;
    out->inst = list;
    out->events = SSS_EV_OPEN | SSS_EV_STATS;
    return SSS_OK;
}

static void allow_destroy(void *inst) { free(inst); }

static uint32_t allow_open(void *inst, const sss_conn *c, void **slot, sss_open_result *out) {
    (void)slot;
    allowlist *list = inst;
    for (uint32_t i = 0; i < list->count; i++) {
        if (contains(&list->blocks[i], &c->peer)) {
            __atomic_add_fetch(&list->allowed, 1, __ATOMIC_RELAXED);
            return SSS_ACCEPT;
        }
    }
    __atomic_add_fetch(&list->rejected, 1, __ATOMIC_RELAXED);
    out->reason_code = SSS_REASON_POLICY;
    if (out->reason_buf && out->reason_cap > 0) {
        snprintf(out->reason_buf, (size_t)out->reason_cap, "client %.*s is not in the allow list",
                 (int)c->peer_ip.len, c->peer_ip.ptr);
    }
    const sss_host_api *h = list->host;
    if (h->log_enabled(h->host_ctx, SSS_LOG_DEBUG)) {
        char line[128];
        int n = snprintf(line, sizeof line, "rejected %.*s", (int)c->peer_ip.len, c->peer_ip.ptr);
        sss_str msg = { line, (uint64_t)(n < 0 ? 0 : n) };
        h->log(h->host_ctx, SSS_LOG_DEBUG, msg);
    }
    return SSS_REJECT;
}

static sss_status allow_stats(void *inst, const sss_sink *sink) {
    allowlist *list = inst;
    char json[160];
    int n = snprintf(json, sizeof json, "{\"blocks\":%u,\"allowed\":%llu,\"rejected\":%llu}", list->count,
                     (unsigned long long)__atomic_load_n(&list->allowed, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&list->rejected, __ATOMIC_RELAXED));
    return sink->write(sink->ctx, json, (uint64_t)n);
}

static const sss_stage_type types[] = {{
    .struct_size = sizeof(sss_stage_type),
    .name = "allowlist",
    .description = "rejects clients outside the configured CIDR blocks",
    .supported_events = SSS_EV_OPEN | SSS_EV_STATS,
    .create = allow_create,
    .destroy = allow_destroy,
    .on_open = allow_open,
    .on_stats = allow_stats,
}};

static const sss_module module = {
    .struct_size = sizeof(sss_module),
    .abi_major = SSS_ABI_MAJOR,
    .abi_minor = SSS_ABI_MINOR,
    .module_name = "allowlist",
    .module_version = "1.0.0",
    .type_count = 1,
    .type_stride = sizeof(sss_stage_type),
    .types = types,
};

__attribute__((visibility("default")))
sss_status sss_stage_entry(const sss_host_api *host, const sss_module **out, char *err_buf, uint64_t err_cap) {
    if (host->abi_major != SSS_ABI_MAJOR) {
        if (err_buf && err_cap) snprintf(err_buf, (size_t)err_cap, "allowlist needs stage ABI %u.x", SSS_ABI_MAJOR);
        return SSS_E_ABI;
    }
    *out = &module;
    return SSS_OK;
}

/*
 * sssonector_stage.h: the SSSonector stage ABI, version 1.2 (SSS_ABI_MAJOR.SSS_ABI_MINOR below).
 *
 * VERSION HISTORY (a minor only appends; each addition is also marked "since 1.N" where it is):
 *   1.0  the first release.
 *   1.1  sss_conn.peer_identity: the verified client certificate of a mutual-TLS listener.
 *   1.2  sss_upstream_result.flags (SSS_RESULT_POOLED: the attempt was served by the warm
 *        pool); the SSS_EV_UPSTREAM_STATUS event and its on_upstream_status hook, through which
 *        stages tell the host which upstreams are unhealthy or paused (admin, warm pool).
 *
 * This header is the whole contract between the `sssonector` host and a stage plugin. It is
 * shared by the host (Swift), by StageKit (the Swift SDK) and by plugins in C or any language
 * that can export a C symbol. It depends on <stdint.h> and <stddef.h> (offsetof) only.
 *
 * STABILITY RULES (a change that breaks one of them is a new MAJOR version):
 *   - Fixed-width integer types and pointers only. No enums, bool, bitfields, long or size_t.
 *     Every "enum" is a uint32_t plus #defines; a #define's value never changes.
 *   - Every struct that may grow starts with `uint32_t struct_size` and only ever grows at the
 *     end. The reader uses only the fields that fit inside the writer's struct_size and treats
 *     the rest as zero / NULL. Arrays of growable structs carry a `stride`.
 *   - Fields marked "since 1.N" are absent (zero) when the other side is older than 1.N.
 *   - Hooks and services added after 1.0 are optional: NULL means "not implemented".
 *   - `reserved` fields are padding; writers set them to zero, readers ignore them.
 *   - The layout of every struct and the value of every constant is pinned by the golden table
 *     in Tests/ABIGoldenLayout (a C file of _Static_asserts compiled on every build).
 *
 * VERSION NEGOTIATION: the host passes its major.minor in sss_host_api; the plugin's module
 * descriptor carries the major.minor it was compiled with. A different major is refused by
 * both sides. Otherwise each side uses only what the smaller minor knows.
 *
 * OWNERSHIP (no side ever frees the other side's memory):
 *   - sss_host_api tables: host-owned, valid for the life of the process (entry table) or
 *     until `destroy` returns (per-instance table passed to `create`).
 *   - sss_module, sss_stage_type[], their strings: plugin-owned, static, never freed
 *     (libraries are never unloaded).
 *   - Everything passed into a hook (sss_conn, args, sss_str, slices, upstream sets): borrowed,
 *     valid only during that call; copy what you keep.
 *   - err_buf / reason_buf: host-owned; the plugin writes at most cap bytes including a
 *     terminating NUL (truncating).
 *   - Text and JSON a stage returns (stats, control answers, log lines, metric names) go through
 *     host services or sinks; the host copies the bytes before the call returns.
 *   - `inst` (from create) and `*slot` (from on_open): plugin-owned, freed by the plugin in
 *     destroy / on_close.
 *
 * THREADS:
 *   - sss_stage_entry, create, destroy, on_tick, on_stats and on_control run on the host's
 *     control thread, never concurrently with each other for one instance.
 *   - Connection hooks (on_open .. on_close) for ONE connection run on that connection's event
 *     loop thread (sss_conn.thread_index), in life-cycle order, never concurrently.
 *     Hooks for DIFFERENT connections reach the same instance concurrently from every loop
 *     thread: instance state must be thread-safe (atomics, short locks, or sharded by
 *     thread_index < sss_create_args.thread_count).
 *   - on_stats and on_control may run while connection hooks run on other threads.
 *   - Hooks never block: no sleeping, no blocking I/O, no unbounded waits on locks.
 *   - Host services are thread-safe and non-blocking. The host never calls into a stage from
 *     inside a service that stage called (conn_post_* only post; the effect comes later).
 *   - destroy runs only after every connection that entered the instance has been closed.
 *
 * ERRORS: no exception, panic or trap may unwind across a call into or out of this ABI.
 */
#ifndef SSSONECTOR_STAGE_H
#define SSSONECTOR_STAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Versions, status codes, the entry symbol                                                    */
/* ------------------------------------------------------------------------------------------ */

#define SSS_ABI_MAJOR 1u
#define SSS_ABI_MINOR 3u  /* 1.1: sss_conn.peer_identity; 1.2: pooled results, upstream status;
                             1.3: asynchronous admission (SSS_PENDING, conn_post_verdict) */

/** The one symbol a stage library exports. */
#define SSS_ENTRY_SYMBOL "sss_stage_entry"

typedef int32_t sss_status;
#define SSS_OK 0
#define SSS_E_ABI (-1)          /* incompatible ABI major, or a struct too small */
#define SSS_E_CONFIG (-2)       /* the stage's config was rejected; text in err_buf */
#define SSS_E_UNSUPPORTED (-3)  /* unknown stage type, command or operation */
#define SSS_E_NOMEM (-4)
#define SSS_E_INTERNAL (-5)
#define SSS_E_NOT_FOUND (-6)    /* e.g. conn_post_* for a connection that is gone */
#define SSS_E_ARGUMENT (-7)     /* a malformed argument (e.g. control JSON) */

/** Borrowed text: `len` bytes at `ptr`. Text the host passes in is also NUL-terminated. */
typedef struct sss_str {
    const char *ptr;
    uint64_t len;
} sss_str;

/** A sink the host passes in: the stage writes bytes (one JSON value in total) in any number
 *  of calls; the host copies them before `write` returns. Borrowed for one call. */
typedef struct sss_sink {
    void *ctx;
    sss_status (*write)(void *ctx, const char *bytes, uint64_t len);
} sss_sink;

/* ------------------------------------------------------------------------------------------ */
/* Host services                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* log levels */
#define SSS_LOG_TRACE 0u
#define SSS_LOG_DEBUG 1u
#define SSS_LOG_INFO 2u
#define SSS_LOG_WARN 3u
#define SSS_LOG_ERROR 4u

/* metric kinds */
#define SSS_METRIC_COUNTER 0u   /* monotonically increasing; metric_add with delta >= 0 */
#define SSS_METRIC_GAUGE 1u     /* metric_set / metric_add */
#define SSS_METRIC_HISTOGRAM 2u /* metric_observe, in base units (seconds, bytes) */

/* host capability bits (sss_host_api.host_caps) */
#define SSS_HOST_CAP_METRICS (1ull << 0)    /* metric_* services work (otherwise no-ops) */
#define SSS_HOST_CAP_CONN_POST (1ull << 1)  /* conn_post_close / conn_post_resume work */
#define SSS_HOST_CAP_ASYNC_OPEN (1ull << 2) /* since 1.3: SSS_PENDING and conn_post_verdict work */

/* directions */
#define SSS_DIR_UP 0u    /* client -> upstream */
#define SSS_DIR_DOWN 1u  /* upstream -> client */

/**
 * Services the host offers. Every function takes `host_ctx` first. Every service is
 * thread-safe and non-blocking. Check SSS_HOST_HAS(api, field) before calling a service added
 * after 1.0.
 */
typedef struct sss_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint64_t host_caps;
    void *host_ctx;
    /** Writes one log line; the host copies `msg` and tags it with the stage instance. */
    void (*log)(void *host_ctx, uint32_t level, sss_str msg);
    /** 1 when a line at `level` would be written: skip formatting otherwise. */
    uint32_t (*log_enabled)(void *host_ctx, uint32_t level);
    /** Monotonic clock in nanoseconds (the host's, injectable in tests). */
    uint64_t (*monotonic_ns)(void *host_ctx);
    /** Wall clock: nanoseconds since the Unix epoch. */
    uint64_t (*wall_ns)(void *host_ctx);
    /**
     * Defines a metric (name without the `sssonector_` prefix, Prometheus conventions:
     * `_total` for counters, base units). `labels` points to `label_count` pairs of
     * (name, value) strings; the host adds `pipeline` and `stage` labels itself. Defining the
     * same name and labels twice returns the same id. Control thread only (create, on_tick,
     * on_stats, on_control). Returns SSS_OK and *out_id, or an error.
     */
    sss_status (*metric_define)(void *host_ctx, uint32_t kind, sss_str name, sss_str help,
                                const sss_str *labels, uint32_t label_count, uint32_t *out_id);
    void (*metric_add)(void *host_ctx, uint32_t id, int64_t delta);  /* any thread */
    void (*metric_set)(void *host_ctx, uint32_t id, double value);   /* any thread, gauges */
    void (*metric_observe)(void *host_ctx, uint32_t id, double value); /* any thread */
    /**
     * Asks the host to close connection `conn_id` with cause SSS_CLOSE_STAGE_CLOSED; posted to
     * the connection's loop, so it happens after the caller returns. SSS_E_NOT_FOUND when the
     * connection is gone. Any thread, including the stage's own threads.
     */
    sss_status (*conn_post_close)(void *host_ctx, uint64_t conn_id, uint32_t reason_code);
    /** Asks the host to offer held-back bytes in direction `dir` again (see on_data). */
    sss_status (*conn_post_resume)(void *host_ctx, uint64_t conn_id, uint32_t dir);
    /**
     * Since 1.3 (SSS_HOST_CAP_ASYNC_OPEN). Settles the open verdict this stage left pending
     * for connection `conn_id` (on_open answered SSS_PENDING): `verdict` is SSS_ACCEPT or
     * SSS_REJECT (then `reason_code` and `reason_text`, copied). Any thread, including the
     * stage's own; posted to the connection's loop, so the chain goes on after the caller
     * returns. SSS_E_NOT_FOUND when the connection is gone. A verdict that arrives after the
     * wait ended (the timeout applied the fallback), or from a stage the connection does not
     * wait for, is dropped on the connection's loop and counted (`late_verdicts` in /stats).
     */
    sss_status (*conn_post_verdict)(void *host_ctx, uint64_t conn_id, uint32_t verdict,
                                    uint32_t reason_code, sss_str reason_text);
} sss_host_api;

/** True when the table `api` (of type `type`) is large enough to hold `field`. */
#define SSS_HOST_HAS(api, type, field) \
    ((uint64_t)(api)->struct_size >= (uint64_t)(offsetof(type, field) + sizeof(((const type *)0)->field)))

/* ------------------------------------------------------------------------------------------ */
/* Connections and upstreams                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* address families (sss_addr.family) */
#define SSS_AF_NONE 0u
#define SSS_AF_INET 4u
#define SSS_AF_INET6 6u

/** A socket address: `addr` holds 4 (IPv4) or 16 (IPv6) bytes in network order; port in host
 *  order. Fixed layout; not growable. */
typedef struct sss_addr {
    uint16_t family;
    uint16_t port;
    uint32_t scope_id;
    uint8_t addr[16];
} sss_addr;

/**
 * One client connection as stages see it. Host-owned; valid from on_open to the end of
 * on_close; fields change between hooks (upstream_index, attempt, now_ns).
 */
typedef struct sss_conn {
    uint32_t struct_size;
    uint32_t thread_index;      /* the event loop it runs on: < sss_create_args.thread_count */
    uint64_t id;                /* unique in this process; for conn_post_* */
    sss_addr peer;              /* the client */
    sss_addr local;             /* the listener address it arrived on */
    sss_str peer_ip;            /* the client's IP as text, without port ("10.1.2.3", "::1") */
    sss_str pipeline;           /* pipeline name */
    sss_str listener;           /* listen address as written in the pipeline file */
    uint64_t accepted_ns;       /* monotonic time of accept */
    uint64_t now_ns;            /* monotonic time of the current hook call (cached per loop pass) */
    int32_t upstream_index;     /* index in the current upstream set; -1 until chosen */
    uint32_t attempt;           /* connect attempt number, 1-based; 0 before the first */
    uint64_t upstream_id;       /* stable id of the chosen upstream; 0 until chosen */
    /* since 1.1: the verified client certificate of a mutual-TLS listener, as text
     * ("CN=client,O=Org; DNS:a.example, IP:10.0.0.7"); empty otherwise. Check struct_size. */
    sss_str peer_identity;
} sss_conn;

/* upstream flags */
#define SSS_UPSTREAM_HEALTHY (1u << 0)   /* the host's view (admin, health of the set) */
#define SSS_UPSTREAM_DRAINING (1u << 1)  /* removed: takes no new connections */

/** One upstream. Host-owned, read-only. Array element; step with sss_upstream_set.stride. */
typedef struct sss_upstream {
    uint32_t struct_size;
    uint32_t flags;
    uint64_t id;                /* stable for the upstream's lifetime; never reused */
    sss_str name;
    sss_str address;            /* "host:port" as written */
    uint32_t weight;
    uint32_t reserved;
    uint64_t active;            /* open connections to it now */
} sss_upstream;

/**
 * The pipeline's upstreams at the time of the call. Borrowed, read-only. `generation` changes
 * whenever upstreams are added, removed or changed, so a stage can cache per-set work.
 */
typedef struct sss_upstream_set {
    uint32_t struct_size;
    uint32_t count;
    uint32_t stride;            /* bytes between items: >= the sss_upstream the stage knows */
    uint32_t reserved;
    uint64_t generation;
    const sss_upstream *items;
} sss_upstream_set;

/** Item `i` of set `s`, honouring its stride. */
#define SSS_UPSTREAM_AT(s, i) \
    ((const sss_upstream *)((const uint8_t *)(s)->items + (uint64_t)(i) * (s)->stride))

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* event bits: a stage type declares what it supports, an instance what it wants, and on_open
 * may clear bits for one connection. The host never calls a hook whose bit is not set. */
#define SSS_EV_OPEN (1ull << 0)
#define SSS_EV_FILTER_UPSTREAMS (1ull << 1)
#define SSS_EV_SELECT_UPSTREAM (1ull << 2)
#define SSS_EV_UPSTREAM_RESULT (1ull << 3)
#define SSS_EV_DATA_UP (1ull << 4)       /* on_data for client -> upstream bytes */
#define SSS_EV_DATA_DOWN (1ull << 5)     /* on_data for upstream -> client bytes */
#define SSS_EV_DATA_SLICES (1ull << 6)   /* on_data also receives read-only slices of the bytes */
#define SSS_EV_CLOSE (1ull << 7)
#define SSS_EV_TICK (1ull << 8)
#define SSS_EV_STATS (1ull << 9)
#define SSS_EV_CONTROL (1ull << 10)
#define SSS_EV_ALL_V1 0x7FFull  /* every event of 1.0 */
#define SSS_EV_UPSTREAM_STATUS (1ull << 11)  /* since 1.2: on_upstream_status */
#define SSS_EV_ALL_V1_2 0xFFFull             /* every event of 1.2 */

/* upstream status bits a stage reports in on_upstream_status (since 1.2) */
#define SSS_STATUS_UNHEALTHY (1u << 0)  /* failing its health checks: `healthy: false` in /stats */
#define SSS_STATUS_PAUSED (1u << 1)     /* healthy, but takes no new connection now (open circuit) */

/* ------------------------------------------------------------------------------------------ */
/* Hook arguments and results                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* on_open verdicts */
#define SSS_ACCEPT 0u
#define SSS_REJECT 1u
#define SSS_PENDING 2u  /* since 1.3: the verdict comes later, through conn_post_verdict */

/* reason codes (rejections and stage-requested closes). Custom codes start at SSS_REASON_CUSTOM;
 * their name is the reason text's first word. */
#define SSS_REASON_NONE 0u
#define SSS_REASON_RATE_LIMITED 1u
#define SSS_REASON_CIRCUIT_OPEN 2u
#define SSS_REASON_NO_UPSTREAM 3u
#define SSS_REASON_POLICY 4u
#define SSS_REASON_OVERLOAD 5u
#define SSS_REASON_CONNECT_FAILED 6u
#define SSS_REASON_LIMIT_REACHED 7u
#define SSS_REASON_CUSTOM 0x1000u

/**
 * What on_open returns besides its verdict. The host pre-fills `events` with the instance's
 * event mask; the stage may clear bits for this connection (never set new ones). On reject,
 * set `reason_code` and optionally write text into reason_buf (host-owned, reason_cap bytes
 * including the NUL).
 *
 * Since 1.3, on_open may answer SSS_PENDING (check struct_size and SSS_HOST_CAP_ASYNC_OPEN
 * first). The host then reads nothing from the client and connects nothing until the stage
 * posts its verdict (conn_post_verdict) or the wait times out: after `pending_timeout_ns`
 * (0: the pipeline's connection.open_timeout alone; that bound always holds), the host applies
 * `fallback_verdict` (SSS_ACCEPT or SSS_REJECT with `fallback_reason_code` and the text in
 * reason_buf). A connection that closes while pending gets on_close once, with
 * SSS_CLOSE_WHILE_PENDING set.
 */
typedef struct sss_open_result {
    uint32_t struct_size;
    uint32_t reason_code;
    uint64_t events;
    char *reason_buf;
    uint64_t reason_cap;
    uint64_t pending_timeout_ns;    /* since 1.3 */
    uint32_t fallback_verdict;      /* since 1.3: SSS_ACCEPT or SSS_REJECT */
    uint32_t fallback_reason_code;  /* since 1.3 */
} sss_open_result;

/* on_select_upstream answers */
#define SSS_SELECT_NO_OPINION 0u   /* let a later stage or the host choose */
#define SSS_SELECT_CHOSEN 1u       /* *out_index holds an eligible index */
#define SSS_SELECT_REJECT 2u       /* reject the connection (no_upstream) */

/* connect outcomes */
#define SSS_CONNECT_OK 0u
#define SSS_CONNECT_REFUSED 1u
#define SSS_CONNECT_TIMEOUT 2u
#define SSS_CONNECT_UNREACHABLE 3u
#define SSS_CONNECT_RESET 4u
#define SSS_CONNECT_OTHER 5u

/** The outcome of one connect attempt; every subscribed stage sees every attempt. */
typedef struct sss_upstream_result {
    uint32_t struct_size;
    uint32_t outcome;           /* SSS_CONNECT_* */
    uint32_t upstream_index;
    uint32_t attempt;           /* 1-based */
    uint64_t upstream_id;
    int32_t os_errno;           /* 0 when not from the OS */
    uint32_t remaining_untried; /* eligible upstreams not yet tried for this connection */
    uint64_t latency_ns;        /* from connect start to outcome */
    /* since 1.2: SSS_RESULT_* bits (0 from an older host). Check struct_size. */
    uint32_t flags;
    uint32_t reserved;
} sss_upstream_result;

/* sss_upstream_result.flags (since 1.2) */
#define SSS_RESULT_POOLED (1u << 0)  /* served by a warm pool connection opened ahead (latency_ns
                                        is the checkout's, not a connect's) */

/* retry actions (what a stage says after a failed attempt) */
#define SSS_RETRY_NO_OPINION 0u   /* the next stage, or the host's retry_attempts policy, decides */
#define SSS_RETRY_AFTER 1u        /* try again (after retry_after_ns; 0 = at once) */
#define SSS_RETRY_GIVE_UP 2u      /* stop: the connection closes with connect_failed */

/** Pre-filled with NO_OPINION by the host; the first stage in chain order with an opinion wins.
 *  Ignored after a successful attempt. */
typedef struct sss_retry_decision {
    uint32_t struct_size;
    uint32_t action;
    uint64_t retry_after_ns;
} sss_retry_decision;

/** A read-only view of bytes the host holds. */
typedef struct sss_slice {
    const uint8_t *ptr;
    uint64_t len;
} sss_slice;

/* sss_data_args.flags */
#define SSS_DATA_EOF (1u << 0)      /* the sender half-closed after the last offered byte */
#define SSS_DATA_REOFFER (1u << 1)  /* bytes offered again after a hold (timer or resume) */

/**
 * Bytes offered to a stage in one direction. The stream offsets are per stage: `offset` is the
 * first byte THIS stage has not granted yet; [offset, offset + avail) has been granted by every
 * earlier stage. Each byte is offered to a stage until it grants it, and counted once.
 */
typedef struct sss_data_args {
    uint32_t struct_size;
    uint32_t dir;               /* SSS_DIR_UP or SSS_DIR_DOWN */
    uint64_t offset;
    uint64_t avail;
    uint64_t buffered;          /* bytes the host holds in this direction (all stages) */
    uint64_t now_ns;
    uint32_t flags;             /* SSS_DATA_* */
    uint32_t slice_count;       /* 0 unless the stage asked for SSS_EV_DATA_SLICES */
    const sss_slice *slices;    /* covering [offset, offset + avail) in order */
} sss_data_args;

/* on_data answers */
#define SSS_DATA_CONTINUE 0u
#define SSS_DATA_CLOSE 1u          /* close the connection: cause STAGE_CLOSED, close_reason */

/**
 * The stage's grant. The host pre-fills granted = avail and retry_after_ns = 0. If the stage
 * grants fewer bytes, the rest stays in the host's buffer (reading stops at the host's high
 * watermark: TCP backpressure) and is offered again after retry_after_ns, or, when that is 0,
 * when new bytes arrive or the stage calls conn_post_resume. The smallest grant in the chain
 * is what moves.
 */
typedef struct sss_data_result {
    uint32_t struct_size;
    uint32_t close_reason;      /* with SSS_DATA_CLOSE */
    uint64_t granted;           /* 0 .. avail */
    uint64_t retry_after_ns;
} sss_data_result;

/* close causes */
#define SSS_CLOSE_CLIENT_EOF 0u       /* both sides finished; the client closed first */
#define SSS_CLOSE_UPSTREAM_EOF 1u     /* both sides finished; the upstream closed first */
#define SSS_CLOSE_CLIENT_RESET 2u
#define SSS_CLOSE_UPSTREAM_RESET 3u
#define SSS_CLOSE_REJECTED 4u         /* a stage rejected it in on_open */
#define SSS_CLOSE_NO_UPSTREAM 5u      /* nothing eligible */
#define SSS_CLOSE_CONNECT_FAILED 6u   /* every attempt failed */
#define SSS_CLOSE_IDLE_TIMEOUT 7u
#define SSS_CLOSE_STAGE_CLOSED 8u     /* a stage asked (on_data or conn_post_close) */
#define SSS_CLOSE_SHUTDOWN 9u         /* the host stopped or drained past its deadline */
#define SSS_CLOSE_ERROR 10u           /* another I/O error */
#define SSS_CLOSE_OVERLOAD 11u        /* over max_connections (stages never see these) */

/** Given to every entered stage exactly once, in on_close. */
typedef struct sss_close_info {
    uint32_t struct_size;
    uint32_t cause;             /* SSS_CLOSE_* */
    int32_t rejected_by;        /* chain index of the rejecting stage, or -1 */
    uint32_t reason_code;       /* SSS_REASON_* when rejected or stage-closed */
    sss_str rejected_by_name;   /* stage name, or empty */
    sss_str reason_text;        /* reason text, or empty */
    int32_t upstream_index;     /* -1 if never connected */
    uint32_t attempts;          /* connect attempts made */
    uint64_t upstream_id;       /* 0 if never connected */
    uint64_t bytes_up;          /* client -> upstream bytes delivered to the upstream */
    uint64_t bytes_down;        /* upstream -> client bytes delivered to the client */
    uint64_t duration_ns;       /* accept to close */
    uint64_t connect_latency_ns;/* of the successful attempt; 0 if none */
    uint32_t flags;             /* since 1.3: SSS_CLOSE_WHILE_PENDING */
    uint32_t reserved;          /* since 1.3: 0 */
} sss_close_info;

/* sss_close_info.flags */
#define SSS_CLOSE_WHILE_PENDING (1u << 0)  /* this stage's open verdict was still pending */

/* ------------------------------------------------------------------------------------------ */
/* Names (helpers, not ABI symbols: inline, so every side agrees on the words operators see)   */
/* ------------------------------------------------------------------------------------------ */

/** The stable name of a reason code ("rate_limited"); "custom" for codes >= SSS_REASON_CUSTOM. */
static inline const char *sss_reason_name(uint32_t code) {
    switch (code) {
    case SSS_REASON_NONE: return "none";
    case SSS_REASON_RATE_LIMITED: return "rate_limited";
    case SSS_REASON_CIRCUIT_OPEN: return "circuit_open";
    case SSS_REASON_NO_UPSTREAM: return "no_upstream";
    case SSS_REASON_POLICY: return "policy";
    case SSS_REASON_OVERLOAD: return "overload";
    case SSS_REASON_CONNECT_FAILED: return "connect_failed";
    case SSS_REASON_LIMIT_REACHED: return "limit_reached";
    default: return code >= SSS_REASON_CUSTOM ? "custom" : "unknown";
    }
}

/** The stable name of a close cause ("client_eof"). */
static inline const char *sss_close_cause_name(uint32_t cause) {
    switch (cause) {
    case SSS_CLOSE_CLIENT_EOF: return "client_eof";
    case SSS_CLOSE_UPSTREAM_EOF: return "upstream_eof";
    case SSS_CLOSE_CLIENT_RESET: return "client_reset";
    case SSS_CLOSE_UPSTREAM_RESET: return "upstream_reset";
    case SSS_CLOSE_REJECTED: return "rejected";
    case SSS_CLOSE_NO_UPSTREAM: return "no_upstream";
    case SSS_CLOSE_CONNECT_FAILED: return "connect_failed";
    case SSS_CLOSE_IDLE_TIMEOUT: return "idle_timeout";
    case SSS_CLOSE_STAGE_CLOSED: return "stage_closed";
    case SSS_CLOSE_SHUTDOWN: return "shutdown";
    case SSS_CLOSE_ERROR: return "error";
    case SSS_CLOSE_OVERLOAD: return "overload";
    default: return "unknown";
    }
}

/** The stable name of a connect outcome ("refused"). */
static inline const char *sss_connect_outcome_name(uint32_t outcome) {
    switch (outcome) {
    case SSS_CONNECT_OK: return "connected";
    case SSS_CONNECT_REFUSED: return "refused";
    case SSS_CONNECT_TIMEOUT: return "timeout";
    case SSS_CONNECT_UNREACHABLE: return "unreachable";
    case SSS_CONNECT_RESET: return "reset";
    default: return "other";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Stage types, instances, the module                                                          */
/* ------------------------------------------------------------------------------------------ */

/** Arguments to create. Borrowed for the call, except `host`, which stays valid until
 *  destroy returns. */
typedef struct sss_create_args {
    uint32_t struct_size;
    uint32_t thread_count;             /* connection hooks run on thread_index < thread_count */
    const sss_host_api *host;          /* services bound to this instance */
    sss_str pipeline_name;
    sss_str instance_name;             /* the stage's "name" in the pipeline */
    sss_str type_name;
    sss_str config_json;               /* the stage's "config" as JSON text ("{}" when absent) */
    const sss_upstream_set *upstreams; /* the pipeline's upstreams at create time */
    char *err_buf;                     /* host-owned; error text on failure */
    uint64_t err_cap;
} sss_create_args;

/** Filled by create. The host pre-fills events = the type's supported_events. */
typedef struct sss_create_result {
    uint32_t struct_size;
    uint32_t tick_interval_ms;         /* 0 = no on_tick */
    void *inst;
    uint64_t events;                   /* subset of supported_events this instance wants */
} sss_create_result;

/* stage type flags */
#define SSS_TYPE_SELECTS_UPSTREAM (1u << 0)  /* informational: it chooses upstreams */

/**
 * One stage type. Static in the plugin. `create` and `destroy` are required; every hook whose
 * event is in supported_events is required; other hooks may be NULL.
 */
typedef struct sss_stage_type {
    uint32_t struct_size;
    uint32_t flags;
    const char *name;                  /* the pipeline's "type"; NUL-terminated */
    const char *description;           /* one line, for `plugin info` */
    uint64_t supported_events;
    uint64_t required_host_caps;       /* the host refuses the type if it lacks one */

    /** Control thread. Parses and validates config_json; on failure returns SSS_E_CONFIG with
     *  text in err_buf and leaves nothing behind. */
    sss_status (*create)(const sss_create_args *args, sss_create_result *out);
    /** Control thread, after every connection that entered the instance has closed. */
    void (*destroy)(void *inst);

    /** Connection loop. *slot starts NULL; the stage may store per-connection state there and
     *  frees it in on_close. Returns SSS_ACCEPT or SSS_REJECT. */
    uint32_t (*on_open)(void *inst, const sss_conn *c, void **slot, sss_open_result *out);
    /** Connection loop. `eligible[i]` is 1 for upstreams still eligible; the stage may only
     *  clear entries. */
    void (*on_filter_upstreams)(void *inst, const sss_conn *c, void **slot,
                                const sss_upstream_set *set, uint8_t *eligible);
    /** Connection loop. Returns SSS_SELECT_*; with CHOSEN, *out_index must be eligible (the
     *  host validates it and treats an invalid index as NO_OPINION). */
    uint32_t (*on_select_upstream)(void *inst, const sss_conn *c, void **slot,
                                   const sss_upstream_set *set, const uint8_t *eligible,
                                   uint32_t *out_index);
    /** Connection loop; after every connect attempt. After a failure the stage may fill
     *  `decision` (pre-filled NO_OPINION). */
    void (*on_upstream_result)(void *inst, const sss_conn *c, void **slot,
                               const sss_upstream_result *result, sss_retry_decision *decision);
    /** Connection loop. Returns SSS_DATA_CONTINUE or SSS_DATA_CLOSE. */
    uint32_t (*on_data)(void *inst, const sss_conn *c, void **slot, const sss_data_args *args,
                        sss_data_result *out);
    /** Connection loop; exactly once per connection that entered this stage (on_open called),
     *  whatever happened. Free *slot here. */
    void (*on_close)(void *inst, const sss_conn *c, void *slot, const sss_close_info *info);

    /** Control thread, every tick_interval_ms. Short. */
    void (*on_tick)(void *inst, uint64_t now_ns);
    /** Control thread; may overlap connection hooks. Writes ONE JSON value into `sink`. */
    sss_status (*on_stats)(void *inst, const sss_sink *sink);
    /** Control thread. `command` is JSON; the answer (one JSON value) goes into `sink`.
     *  SSS_E_ARGUMENT / SSS_E_UNSUPPORTED with a JSON {"error": ...} answer on bad commands. */
    sss_status (*on_control)(void *inst, sss_str command, const sss_sink *sink);
    /** Since 1.2 (SSS_EV_UPSTREAM_STATUS). Any thread: the control thread (/stats) and the
     *  event loops (warm-pool refills), concurrently with connection hooks. `status[i]` is
     *  pre-filled 0 for item i of `set` (which carries live `active` figures); the stage ORs in
     *  SSS_STATUS_* bits. This is how the host learns health: it never reads stage stats. */
    void (*on_upstream_status)(void *inst, const sss_upstream_set *set, uint64_t now_ns,
                               uint8_t *status);
} sss_stage_type;

/** What sss_stage_entry returns: a static description of the library. */
typedef struct sss_module {
    uint32_t struct_size;
    uint16_t abi_major;                /* as compiled: SSS_ABI_MAJOR */
    uint16_t abi_minor;                /* as compiled: SSS_ABI_MINOR */
    const char *module_name;
    const char *module_version;
    uint32_t type_count;
    uint32_t type_stride;              /* sizeof(sss_stage_type) as compiled */
    const sss_stage_type *types;
} sss_module;

/**
 * The entry point, exported as SSS_ENTRY_SYMBOL. Called once per library, on the control
 * thread, before any other call. `host` stays valid for the life of the process. Returns
 * SSS_OK and *out, or an error with text in err_buf (SSS_E_ABI on a major mismatch).
 */
typedef sss_status (*sss_entry_fn)(const sss_host_api *host, const sss_module **out,
                                   char *err_buf, uint64_t err_cap);

#ifdef __cplusplus
}
#endif

#endif /* SSSONECTOR_STAGE_H */

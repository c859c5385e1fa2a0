#ifndef SSS_CRASH_REPORT_H
#define SSS_CRASH_REPORT_H
/*
 * Which stage hook the current thread is running, so that a stage that crashes the process
 * (stages run in-process, like nginx modules) is named in the last line the host writes.
 *
 * The marker is two thread-local stores around each hook call; the fatal-signal handler
 * (installed once by sss_crash_report_install) reads it, writes one line to stderr with
 * async-signal-safe calls only, and hands the signal to the handler that was there before
 * (the Swift runtime's backtracer, or the default action).
 */
#include <stdint.h>

/* Hooks, as named in the line (the fields of sss_stage_type). */
enum {
    SSS_HOOK_NONE = 0, SSS_HOOK_ENTRY, SSS_HOOK_CREATE, SSS_HOOK_DESTROY, SSS_HOOK_OPEN,
    SSS_HOOK_FILTER, SSS_HOOK_SELECT, SSS_HOOK_RESULT, SSS_HOOK_DATA, SSS_HOOK_CLOSE,
    SSS_HOOK_TICK, SSS_HOOK_STATS, SSS_HOOK_CONTROL, SSS_HOOK_STATUS
};

extern _Thread_local const char *sss_running_stage;
extern _Thread_local uint32_t sss_running_hook;

/* Marks the start of a hook call of stage `stage` (a NUL-terminated name that outlives it). */
static inline void sss_hook_enter(const char *stage, uint32_t hook) {
    sss_running_stage = stage;
    sss_running_hook = hook;
}

/* Marks the end of the hook call. */
static inline void sss_hook_leave(void) { sss_running_hook = SSS_HOOK_NONE; }

/* Installs the fatal-signal handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) once. */
void sss_crash_report_install(void);

#endif

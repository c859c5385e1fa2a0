#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "sss_crash_report.h"

_Thread_local const char *sss_running_stage;
_Thread_local uint32_t sss_running_hook;

static const char *const hook_names[] = {
    "", "sss_stage_entry", "create", "destroy", "on_open", "on_filter_upstreams", "on_select_upstream",
    "on_upstream_result", "on_data", "on_close", "on_tick", "on_stats", "on_control",
    "on_upstream_status",
};

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction previous[sizeof fatal_signals / sizeof fatal_signals[0]];

static void put(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_fatal_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    uint32_t hook = sss_running_hook;
    if (hook != SSS_HOOK_NONE && hook < sizeof hook_names / sizeof hook_names[0]) {
        put("sssonector: fatal signal ");
        put(sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        put(" while stage \"");
        put(sss_running_stage ? sss_running_stage : "?");
        put("\" ran its ");
        put(hook_names[hook]);
        put(" hook; stages run inside the host process, so the host stops\n");
    }
    /* Hand the signal on: restore what was there; a fault happens again on return, a signal
     * that was sent (abort, kill) is sent again. */
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        if (fatal_signals[i] == sig) sigaction(sig, &previous[i], NULL);
    }
    if (info == NULL || info->si_code <= 0) raise(sig);
}

void sss_crash_report_install(void) {
    static int installed;
    if (installed) return;
    installed = 1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        sigaction(fatal_signals[i], &action, &previous[i]);
    }
}

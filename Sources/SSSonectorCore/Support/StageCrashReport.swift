import CrashReport

/// A stage runs inside the host's process, as an nginx module does: a stage that crashes takes
/// the process down. What the host can do is say which one: each hook call marks the stage and
/// hook on its thread, and a fatal-signal handler writes one line naming them before the signal
/// takes its course (`Sources/CrashReport`).
public enum StageCrashReport {
    /// Installs the handler (once; later calls do nothing). Call it early in `main`.
    public static func install() { sss_crash_report_install() }
}

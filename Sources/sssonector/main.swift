import ArgumentParser
import Glibc
import SSSonectorCore

// A stage that crashes the process is named in the last line on stderr.
StageCrashReport.install()

// `run` waits for SIGINT/SIGTERM/SIGHUP with sigwait: block them now, before any thread exists, so
// every thread inherits the mask and a signal is never delivered with its default action.
if CommandLine.arguments.dropFirst().first == "run" {
    SignalWaiter.blockForWaiting([SIGINT, SIGTERM, SIGHUP])
}

SSSonectorCommand.main()

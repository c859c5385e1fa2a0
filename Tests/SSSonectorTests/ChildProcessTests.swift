import Foundation
import Glibc
import Testing

/// The tests' own process starter (`Support/ChildProcess.swift`): what the child is given, what
/// comes back, and how it ended.
@Suite struct ChildProcessTests {
    @Test func aChildGetsItsInputAndReportsItsOutputAndExitCode() throws {
        let finished = try ChildProcess.run("/bin/sh", ["-c", "cat; echo oops >&2; exit 3"], input: Data("abc".utf8))
        #expect(finished.stdout == "abc" && finished.stderr == "oops\n")
        #expect(finished.status == 3 && !finished.bySignal)
        let merged = try ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2"], errorsToOutput: true)
        #expect(merged.stdout == "out\nerr\n" && merged.stderr == "")
    }

    @Test func aChildKilledByASignalSaysWhichOne() throws {
        let finished = try ChildProcess.run("/bin/sh", ["-c", "kill -9 $$"])
        #expect(finished.bySignal && finished.status == SIGKILL)
    }

    @Test func aChildInheritsNoDescriptorButThoseItIsGiven() throws {
        // A descriptor without close-on-exec, as SwiftNIO's sockets are.
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        #expect(socket > 4)
        // `ls` lists its own open directory too, at the lowest free number.
        let plain = try ChildProcess.run("/bin/ls", ["/proc/self/fd"])
        #expect(Set(plain.stdout.split(separator: "\n")) == ["0", "1", "2", "3"], "\(plain.stdout)")
        let ends = try ChildProcess.pipeClosedOnExec()
        defer { close(ends[0]); close(ends[1]) }
        let given = try ChildProcess.run("/bin/sh", ["-c", "echo given >&3; ls /proc/self/fd"], placing: [(ends[1], 3)])
        #expect(Set(given.stdout.split(separator: "\n")) == ["0", "1", "2", "3", "4"], "\(given.stdout)")
        var byte = [UInt8](repeating: 0, count: 6)
        #expect(read(ends[0], &byte, 6) == 6 && byte == Array("given\n".utf8))
    }
}

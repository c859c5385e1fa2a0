import Foundation
import Glibc

/// A process a test starts (the host, redis-server, openssl, cc, Chromium), with `posix_spawn`.
///
/// Not Foundation's `Process`: on this toolchain its `run()` lists `/proc/self/fd` with a copy
/// of each whole `dirent` that can read past the end of glibc's buffer, and it crashed the test
/// process now and then (SIGSEGV in `memmove` under `Process.run()`, seen in CI; fixed upstream
/// in swift-corelibs-foundation PR #5472, after this toolchain). Nor swift-subprocess: it scopes a
/// process to a closure, and tests need one that outlives the call that started it and is
/// stopped from synchronous code (`defer { host.stop() }`).
///
/// The child gets stdin, stdout, stderr and the descriptors `placing` names, nothing else:
/// every other descriptor of the test process is closed in it (SwiftNIO opens its sockets
/// without close-on-exec, and a child holding another test's connection keeps it open). It runs
/// in its own process group, as under `Process`.
final class ChildProcess: @unchecked Sendable {  // `status` is guarded by `lock`
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// How a child that ran to its end finished, and what it wrote.
    struct Finished {
        let status: Int32
        let bySignal: Bool
        let stdout: String
        let stderr: String
    }

    let processIdentifier: pid_t
    private let lock = NSLock()
    private var status: Int32?
    private let readers = DispatchGroup()

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which the Glibc
    /// module does not export (it is a GNU extension): found by name at run time.
    private static let addCloseFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            fatalError("glibc 2.34 or later is needed (posix_spawn_file_actions_addclosefrom_np)")
        }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Starts `executable ARGUMENTS...` with `environment` (this process's when nil).
    /// - `input`: written to its stdin, which is then closed (nil: /dev/null).
    /// - `stdout`, `stderr`: called on a reader thread with each chunk the child writes, then
    ///   once with empty data at the end (nil: /dev/null). `errorsToOutput` sends stderr to stdout.
    /// - `placing`: descriptors of this process given to the child at the numbers paired with
    ///   them (3 and up).
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
         stdout: (@Sendable (Data) -> Void)? = nil, stderr: (@Sendable (Data) -> Void)? = nil,
         errorsToOutput: Bool = false, placing: [(descriptor: Int32, at: Int32)] = []) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        var parentEnds: [(fd: Int32, handler: (@Sendable (Data) -> Void)?, writes: Data?)] = []
        var started = false
        defer { if !started { for end in parentEnds { close(end.fd) } } }  // a failure below leaks no pipe

        // A pipe whose child end sits at 64 or above (as every placed descriptor does before it
        // is moved), so that moving one to its number never overwrites another still to move.
        func pipeFor(child target: Int32, childReads: Bool) throws -> Int32 {
            let ends = try Self.pipeClosedOnExec()
            let (childEnd, parentEnd) = childReads ? (ends[0], ends[1]) : (ends[1], ends[0])
            let high = fcntl(childEnd, F_DUPFD_CLOEXEC, 64)
            close(childEnd)
            childEnds.append(high)
            posix_spawn_file_actions_adddup2(&actions, high, target)
            return parentEnd
        }

        if let input {
            parentEnds.append((try pipeFor(child: 0, childReads: true), nil, input))
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        for (target, handler) in [(Int32(1), stdout), (Int32(2), stderr)] {
            if target == 2, errorsToOutput {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            } else if let handler {
                parentEnds.append((try pipeFor(child: target, childReads: false), handler, nil))
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        for (descriptor, at) in placing {
            precondition(at > 2 && at < 64, "a placed descriptor goes at 3...63")
            let high = fcntl(descriptor, F_DUPFD_CLOEXEC, 64)
            childEnds.append(high)
            posix_spawn_file_actions_adddup2(&actions, high, at)
        }
        guard Self.addCloseFrom(&actions, (placing.map(\.at).max() ?? 2) + 1) == 0 else {
            throw Failure(description: "posix_spawn_file_actions_addclosefrom_np failed")
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = (environment ?? ProcessInfo.processInfo.environment)
            .map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard spawned == 0 else {
            throw Failure(description: "posix_spawn \(executable): \(String(cString: strerror(spawned)))")
        }
        processIdentifier = pid
        started = true

        for end in parentEnds {
            readers.enter()
            Thread.detachNewThread { [readers] in
                defer { close(end.fd); readers.leave() }
                if let input = end.writes {
                    // A child that exits without reading makes the write fail with EPIPE; the
                    // signal that comes with it stays pending on this thread, which then ends.
                    var pipeSignal = sigset_t()
                    sigemptyset(&pipeSignal)
                    sigaddset(&pipeSignal, SIGPIPE)
                    pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                    input.withUnsafeBytes { bytes in
                        var offset = 0
                        while offset < bytes.count {
                            let n = write(end.fd, bytes.baseAddress! + offset, bytes.count - offset)
                            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
                        }
                    }
                    return
                }
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(end.fd, $0.baseAddress, $0.count) }
                    if n > 0 { end.handler?(Data(buffer[0..<n])); continue }
                    if n < 0 && errno == EINTR { continue }
                    end.handler?(Data())
                    return
                }
            }
        }
    }

    /// A pipe, both ends close-on-exec: `[read, write]`. (`pipe2` is a GNU extension the Glibc
    /// module does not export; a child spawned in between inherits nothing anyway, see above.)
    static func pipeClosedOnExec() throws -> [Int32] {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Failure(description: "pipe: errno \(errno)") }
        for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return ends
    }

    /// Runs `executable ARGUMENTS...` to its end; returns how it finished and what it wrote.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    input: Data? = nil, errorsToOutput: Bool = false, placing: [(descriptor: Int32, at: Int32)] = []) throws -> Finished {
        let out = Collected(), err = Collected()
        let child = try ChildProcess(executable, arguments, environment: environment, input: input,
                                     stdout: out.append, stderr: errorsToOutput ? nil : err.append,
                                     errorsToOutput: errorsToOutput, placing: placing)
        child.waitUntilExit()
        child.readers.wait()
        return Finished(status: child.terminationStatus, bySignal: child.terminatedBySignal, stdout: out.text, stderr: err.text)
    }

    /// What a reader thread has read so far.
    private final class Collected: @unchecked Sendable {  // `data` is guarded by `lock`
        private let lock = NSLock()
        private var data = Data()
        @Sendable func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
        var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    }

    /// Whether it has not exited yet (it is reaped once it has).
    var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        guard status == nil else { return false }
        var raw: Int32 = 0
        if waitpid(processIdentifier, &raw, WNOHANG) == processIdentifier { status = raw }
        return status == nil
    }

    /// Waits until it has exited.
    func waitUntilExit() {
        while true {
            if lock.withLock({ status != nil }) { return }
            var raw: Int32 = 0
            let reaped = waitpid(processIdentifier, &raw, 0)
            if reaped == processIdentifier {
                lock.withLock { status = raw }
                return
            }
            if reaped < 0 && errno == EINTR { continue }
            // ECHILD: `isRunning` on another thread reaped it and is keeping its status.
            usleep(1000)
        }
    }

    /// Sends SIGTERM.
    func terminate() { kill(processIdentifier, SIGTERM) }

    /// Its exit code, or the number of the signal that ended it; after `waitUntilExit()`.
    var terminationStatus: Int32 {
        let raw = lock.withLock { status } ?? 0
        return raw & 0x7F == 0 ? (raw >> 8) & 0xFF : raw & 0x7F
    }

    /// Whether a signal ended it; after `waitUntilExit()`.
    var terminatedBySignal: Bool { (lock.withLock { status } ?? 0) & 0x7F != 0 }
}

import Locking
import Foundation
import Logging
import Synchronization
@testable import SSSonectorCore

/// Where the build put things, and helpers every suite shares.
enum TestEnvironment {
    /// The SwiftPM bin folder: the test runner, `sssonector` and the plugin `.so` files.
    static let binDirectory: String = PluginSearchPath.executableDirectory() ?? "."

    /// The repository root (for fixtures and pipeline files).
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func binPath(_ name: String) -> String { "\(binDirectory)/\(name)" }

    /// The data path hosts in this run use: SSSONECTOR_TEST_DATA_PATH (scripts/test.sh runs the
    /// end-to-end suites once per path), else the host's default.
    static let dataPath: DataPathChoice =
        ProcessInfo.processInfo.environment["SSSONECTOR_TEST_DATA_PATH"].flatMap(DataPathChoice.init(rawValue:)) ?? .hostDefault

    /// A library built by SwiftPM next to the runner, e.g. `libbytecap.so`.
    static func builtPlugin(_ name: String) -> String { binPath("lib\(name).so") }

    static let logger: Logger = {
        var l = Logger(label: "sssonector.tests")
        l.logLevel = .critical
        return l
    }()

    /// A fresh folder for this test's files.
    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "sssonector-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes `text` to a new file in a fresh folder; returns its path.
    static func writeFile(_ name: String, _ text: String, in directory: String? = nil) -> String {
        let dir = directory ?? temporaryDirectory()
        let path = "\(dir)/\(name)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }
}

/// A clock the test moves by hand: stages see exactly the time the test sets.
final class ManualClock: HostClock {
    private let nanoseconds = Atomic<UInt64>(1_000_000_000_000)
    func monotonicNanoseconds() -> UInt64 { nanoseconds.load(ordering: .relaxed) }
    func wallNanoseconds() -> UInt64 { 1_700_000_000_000_000_000 &+ nanoseconds.load(ordering: .relaxed) }
    func advance(_ delta: UInt64) { nanoseconds.wrappingAdd(delta, ordering: .relaxed) }
    func advance(milliseconds: UInt64) { advance(milliseconds * 1_000_000) }
}

/// Records posts from stages instead of delivering them.
final class RecordingPoster: ConnectionPoster {
    let closes = Locked<[(UInt64, UInt32)]>([])
    let resumes = Locked<[(UInt64, UInt32)]>([])
    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool {
        closes.withLock { $0.append((connectionID, reasonCode)) }
        return true
    }
    func postResume(connectionID: UInt64, direction: UInt32) -> Bool {
        resumes.withLock { $0.append((connectionID, direction)) }
        return true
    }
    let verdicts = Locked<[(UInt64, PostedVerdict)]>([])
    func postVerdict(connectionID: UInt64, _ verdict: PostedVerdict) -> Bool {
        verdicts.withLock { $0.append((connectionID, verdict)) }
        return true
    }
}

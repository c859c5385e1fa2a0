import ConfigValues
import Foundation
import Logging
import SSSonectorCore
import StageABI

/// A stage library under test: loaded through the host's real loader (libltdl, the ABI checks
/// of `sssonector plugin check`), one instance created from `config`, and connections driven
/// through the host's real chain code, without sockets, on a manual clock.
///
/// ```swift
/// let stage = try StageUnderTest(library: StageUnderTest.builtLibrary("mystage"), config: #"{"limit": 2}"#)
/// let connection = stage.connect(from: "10.0.0.7")
/// #expect(connection.open() == .accepted)
/// stage.clock.advance(milliseconds: 500)
/// ```
///
/// Not thread-safe: drive it from one test. The instance is destroyed when this object goes.
public final class StageUnderTest {
    /// The time every hook sees; advance it to move token buckets, windows and timeouts.
    public let clock = TestClock()
    /// The upstreams the pipeline would have, by name (their addresses are placeholders).
    public let upstreamNames: [String]
    let table: UpstreamTable
    let chain: StageChain
    let instance: StageInstance
    /// What the stage posted to the host (verdicts, closes, resumes), by connection.
    let posts = TestPoster()
    private var nextID: UInt64 = 1

    /// Loads `library` (a path to a `.so`, or a short name searched like the host does), picks
    /// `type` (or its only type), and creates an instance with `config` (JSON text). Throws
    /// the error the host would print, for a library that fails the ABI checks or a config the
    /// stage rejects.
    public init(library: String, type: String? = nil, config: String = "{}", upstreams: [String] = ["a", "b"],
                weights: [UInt32]? = nil, threadCount: Int = 2) throws {
        let loaded = try PluginLibrary.load(library)
        upstreamNames = upstreams
        table = UpstreamTable(upstreams.enumerated().map { ($0.element, "127.0.0.1:\(20000 + $0.offset)", weights?[$0.offset] ?? 1) })
        let services = HostServices(logger: Logger(label: "stage-under-test"), clock: clock, metrics: MetricsRegistry(),
                                    metricLabels: [("pipeline", "test"), ("stage", "under_test")], poster: posts)
        instance = try StageInstance(type: try loaded.type(named: type), name: "under_test", pipeline: "test",
                                     configJSON: config, upstreams: table.current, threadCount: threadCount,
                                     services: services)
        chain = StageChain(stages: [instance], pipeline: "test", listener: "127.0.0.1:7000")
    }

    deinit { instance.destroy() }

    /// The `.so` that `swift build` made for the dynamic library product `name`
    /// (`lib<name>.so`), in the build folder of the tests that run now.
    public static func builtLibrary(_ name: String) -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("lib\(name).so").path
    }

    /// A new connection from `ip` (IPv4 dotted quad or IPv6 text), not yet opened.
    public func connect(from ip: String = "127.0.0.1", port: UInt16 = 40000, threadIndex: Int = 0) -> TestConnection {
        defer { nextID += 1 }
        return TestConnection(stage: self, id: nextID, peer: Self.address(ip, port: port), threadIndex: threadIndex)
    }

    /// Runs the tick hook once (as the host does every `tickIntervalMilliseconds`).
    public func tick() { instance.tick(now: clock.monotonicNanoseconds()) }

    /// What the stage reports about each upstream (`UpstreamStatusHook`, as the host asks it for
    /// `/stats` and for its warm pool), by upstream name.
    public func upstreamStatus() -> [String: UpstreamStatus] {
        let bits = chain.upstreamStatus(of: table.current, now: clock.monotonicNanoseconds())
        var result: [String: UpstreamStatus] = [:]
        for (i, name) in upstreamNames.enumerated() where i < bits.count {
            result[name] = UpstreamStatus(unhealthy: bits[i] & UInt8(SSS_STATUS_UNHEALTHY) != 0,
                                          paused: bits[i] & UInt8(SSS_STATUS_PAUSED) != 0)
        }
        return result
    }

    /// One upstream's status as a stage reports it.
    public struct UpstreamStatus: Equatable, Sendable {
        public var unhealthy: Bool
        public var paused: Bool
        public init(unhealthy: Bool = false, paused: Bool = false) {
            self.unhealthy = unhealthy
            self.paused = paused
        }
    }

    /// The stage's `/stats` JSON, parsed; nil when it has no stats hook.
    public func stats() -> JSONValue? {
        instance.statsJSON().flatMap { try? JSONValue.parse($0) }
    }

    /// Sends a control command (JSON text); the status (0 for OK) and the answer, parsed.
    public func control(_ command: String) -> (status: Int32, answer: JSONValue?) {
        let reply = instance.control(command)
        return (reply.status, try? JSONValue.parse(reply.answer))
    }

    static func address(_ ip: String, port: UInt16) -> sss_addr {
        var address = sss_addr()
        address.port = port
        withUnsafeMutableBytes(of: &address.addr) { raw in
            if inet_pton(AF_INET, ip, raw.baseAddress) == 1 {
                address.family = UInt16(SSS_AF_INET)
            } else if inet_pton(AF_INET6, ip, raw.baseAddress) == 1 {
                address.family = UInt16(SSS_AF_INET6)
            }
        }
        return address
    }
}

/// The time the stage under test sees: starts at 1 s and moves only when told.
public final class TestClock: HostClock, @unchecked Sendable {  // one test thread drives it
    private var nanoseconds: UInt64 = 1_000_000_000

    public init() {}
    public func monotonicNanoseconds() -> UInt64 { nanoseconds }
    public func wallNanoseconds() -> UInt64 { 1_700_000_000_000_000_000 &+ nanoseconds }
    public func advance(nanoseconds delta: UInt64) { nanoseconds &+= delta }
    public func advance(milliseconds: UInt64) { advance(nanoseconds: milliseconds * 1_000_000) }
    public func advance(seconds: Double) { advance(nanoseconds: UInt64(seconds * 1e9)) }
}

/// Collects what the stage under test posts through its host services (`conn_post_verdict`,
/// `conn_post_close`, `conn_post_resume`), from any thread, for the test to apply.
final class TestPoster: ConnectionPoster, @unchecked Sendable {  // guarded by `condition`
    private let condition = NSCondition()
    private var verdicts: [UInt64: [PostedVerdict]] = [:]
    private(set) var closes: [(UInt64, UInt32)] = []
    private(set) var resumes: [(UInt64, UInt32)] = []

    func postClose(connectionID: UInt64, reasonCode: UInt32) -> Bool {
        condition.withLock { closes.append((connectionID, reasonCode)) }
        return true
    }

    func postResume(connectionID: UInt64, direction: UInt32) -> Bool {
        condition.withLock { resumes.append((connectionID, direction)) }
        return true
    }

    func postVerdict(connectionID: UInt64, _ verdict: PostedVerdict) -> Bool {
        condition.withLock {
            verdicts[connectionID, default: []].append(verdict)
            condition.broadcast()
        }
        return true
    }

    /// The oldest verdict posted for `id` not taken yet; waits up to `seconds` for one.
    func takeVerdict(for id: UInt64, waitingUpTo seconds: Double) -> PostedVerdict? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while verdicts[id, default: []].isEmpty {
            if seconds <= 0 || !condition.wait(until: deadline) { break }
        }
        guard var list = verdicts[id], !list.isEmpty else { return nil }
        let first = list.removeFirst()
        verdicts[id] = list
        return first
    }
}

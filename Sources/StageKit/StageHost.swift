@_exported import ConfigValues
@_exported import Locking
import Foundation
import StageABI

/// The host's services for one stage instance: logging, clocks, metrics and connection posts.
/// Thread-safe; valid for the instance's life.
public struct StageHost: @unchecked Sendable {  // the table is immutable and host-owned
    let api: UnsafePointer<sss_host_api>

    /// Log levels, as the host's logger knows them.
    public enum Level: UInt32, Sendable { case trace = 0, debug, info, warn, error }

    /// Monotonic nanoseconds (the host's clock; a manual clock in tests).
    public func now() -> UInt64 { api.pointee.monotonic_ns(api.pointee.host_ctx) }
    /// Nanoseconds since the Unix epoch.
    public func wallNow() -> UInt64 { api.pointee.wall_ns(api.pointee.host_ctx) }

    /// Logs a line tagged with this stage; the message is built only when the level is on.
    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard api.pointee.log_enabled(api.pointee.host_ctx, level.rawValue) != 0 else { return }
        message().withSSSString { api.pointee.log(api.pointee.host_ctx, level.rawValue, $0) }
    }

    /// A metric defined through the host, updated by id (lock-free on the host side).
    public struct Metric: Sendable {
        let id: UInt32
        let host: StageHost?
        public func add(_ delta: Int64) { host.map { $0.api.pointee.metric_add($0.api.pointee.host_ctx, id, delta) } }
        public func increment() { add(1) }
        public func set(_ value: Double) { host.map { $0.api.pointee.metric_set($0.api.pointee.host_ctx, id, value) } }
        public func observe(_ value: Double) { host.map { $0.api.pointee.metric_observe($0.api.pointee.host_ctx, id, value) } }
    }

    public enum MetricKind: UInt32, Sendable { case counter = 0, gauge = 1, histogram = 2 }

    /// Defines a metric (control thread: `init`, `tick`, `stats`, `control`). Name without the
    /// `sssonector_` prefix, Prometheus style (`_total` on counters, base units). The host adds
    /// `pipeline` and `stage` labels. A metric that could not be defined is a no-op.
    public func metric(_ kind: MetricKind, _ name: String, help: String, labels: [(String, String)] = []) -> Metric {
        var id: UInt32 = 0
        let flat = labels.flatMap { [$0.0, $0.1] }
        let status = name.withSSSString { n in
            help.withSSSString { h in
                withSSSStrings(flat) { pairs in
                    api.pointee.metric_define(api.pointee.host_ctx, kind.rawValue, n, h, pairs.baseAddress,
                                              UInt32(labels.count), &id)
                }
            }
        }
        return Metric(id: id, host: status == SSS_OK ? self : nil)
    }

    /// Asks the host to close a connection (from any thread). False when it is gone.
    @discardableResult
    public func closeConnection(_ id: UInt64, reason: StageReason) -> Bool {
        api.pointee.conn_post_close(api.pointee.host_ctx, id, reason.rawValue) == SSS_OK
    }

    /// Whether the host can wait for a pending open verdict (ABI 1.3 and `conn_post_verdict`).
    public var supportsPendingOpen: Bool {
        let end = MemoryLayout<sss_host_api>.offset(of: \sss_host_api.conn_post_verdict)! + MemoryLayout<UnsafeRawPointer>.size
        return Int(api.pointee.struct_size) >= end && api.pointee.host_caps & SSS_HOST_CAP_ASYNC_OPEN != 0
            && api.pointee.conn_post_verdict != nil
    }

    /// Settles the open verdict this stage left pending for connection `id` (from any thread):
    /// `.accept`, `.acceptWithout` (the events were fixed at open: accepted as is), or a
    /// rejection. False when the connection is gone or the host is older than 1.3; a verdict
    /// that arrives after the host's timeout applied the fallback is dropped by the host.
    @discardableResult
    public func postVerdict(_ id: UInt64, _ verdict: OpenVerdict) -> Bool {
        guard supportsPendingOpen, let post = api.pointee.conn_post_verdict else { return false }
        let (code, reason, text): (UInt32, UInt32, String)
        switch verdict.settled {
        case .accept, .acceptWithout: (code, reason, text) = (SSS_ACCEPT, 0, "")
        case .reject(let r, let t): (code, reason, text) = (SSS_REJECT, r.rawValue, t)
        case .rejectCustom(let r, let t): (code, reason, text) = (SSS_REJECT, r, t)
        case .pending: (code, reason, text) = (SSS_REJECT, StageReason.policy.rawValue, "")
        }
        return text.withSSSString { post(api.pointee.host_ctx, id, code, reason, $0) } == SSS_OK
    }

    /// Asks the host to offer held-back bytes again (from any thread). False when it is gone.
    @discardableResult
    public func resume(_ id: UInt64, direction: DataDirections) -> Bool {
        let dir = direction == .down ? SSS_DIR_DOWN : SSS_DIR_UP
        return api.pointee.conn_post_resume(api.pointee.host_ctx, id, dir) == SSS_OK
    }
}

/// Everything `Stage.init(setup:)` gets.
public struct StageSetup {
    /// The stage's `"config"`, parsed (an empty object when absent).
    public let config: JSONValue
    /// The stage's `"config"` as the JSON text the host passed.
    public let configJSON: String
    public let pipelineName: String
    /// The stage's `"name"` in the pipeline.
    public let instanceName: String
    /// Connection hooks run on `threadIndex < threadCount`: size shards by it.
    public let threadCount: Int
    /// Upstream names and addresses at create time, in order.
    public let upstreams: [(id: UInt64, name: String, address: String, weight: UInt32)]
    public let host: StageHost

    /// The config as a `ConfigObject` for typed reads; call `finish()` on it when done so
    /// unknown keys are rejected with their path.
    public func configObject() throws(ConfigError) -> ConfigObject {
        try ConfigObject(config, path: "")
    }
}

extension String {
    func withSSSString<R>(_ body: (sss_str) -> R) -> R {
        let length = UInt64(utf8.count)
        return withCString { body(sss_str(ptr: $0, len: length)) }
    }
}

/// Calls `body` with the strings as a contiguous `sss_str` array valid during the call.
func withSSSStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<sss_str>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>] = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    let items = zip(pointers, strings).map { sss_str(ptr: $0.0, len: UInt64($0.1.utf8.count)) }
    pointers.reserveCapacity(pointers.count)
    return items.withUnsafeBufferPointer(body)
}

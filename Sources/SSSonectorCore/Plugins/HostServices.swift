import Logging
import StageABI

/// What one stage instance (or one library's entry call) reaches through its `sss_host_api`
/// table: its logger, the clocks, the metrics registry with its labels, and the connection
/// table for `conn_post_*`.
public final class HostServices: Sendable {
    public let logger: Logger
    public let clock: any HostClock
    public let metrics: MetricsRegistry
    /// Labels the host adds to every metric the stage defines (`pipeline`, `stage`).
    public let metricLabels: [(String, String)]
    public let poster: (any ConnectionPoster)?
    /// Kinds of ABI misuse already logged for this stage.
    let faults = StageFaults()

    /// Every capability a running host offers (`plugin check` validates against these).
    public static let fullCapabilities = SSS_HOST_CAP_METRICS | SSS_HOST_CAP_CONN_POST | SSS_HOST_CAP_ASYNC_OPEN

    /// The C table handed to the plugin; valid until `release()`.
    nonisolated(unsafe) private(set) var table: UnsafeMutablePointer<sss_host_api>

    public init(
        logger: Logger, clock: any HostClock, metrics: MetricsRegistry,
        metricLabels: [(String, String)], poster: (any ConnectionPoster)?
    ) {
        self.logger = logger
        self.clock = clock
        self.metrics = metrics
        self.metricLabels = metricLabels
        self.poster = poster
        self.table = UnsafeMutablePointer<sss_host_api>.allocate(capacity: 1)
        var caps = SSS_HOST_CAP_METRICS
        if poster != nil { caps |= SSS_HOST_CAP_CONN_POST | SSS_HOST_CAP_ASYNC_OPEN }
        table.initialize(to: sss_host_api(
            struct_size: UInt32(MemoryLayout<sss_host_api>.size),
            abi_major: UInt16(SSS_ABI_MAJOR), abi_minor: UInt16(SSS_ABI_MINOR),
            host_caps: caps,
            host_ctx: nil,
            log: hostLog, log_enabled: hostLogEnabled,
            monotonic_ns: hostMonotonic, wall_ns: hostWall,
            metric_define: hostMetricDefine, metric_add: hostMetricAdd,
            metric_set: hostMetricSet, metric_observe: hostMetricObserve,
            conn_post_close: hostPostClose, conn_post_resume: hostPostResume,
            conn_post_verdict: hostPostVerdict))
        // Unretained: the owner keeps this object alive at least as long as the table.
        table.pointee.host_ctx = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        table.deinitialize(count: 1)
        table.deallocate()
    }

    /// The table pointer to pass across the ABI.
    public var api: UnsafePointer<sss_host_api> { UnsafePointer(table) }

    @inline(__always)
    static func from(_ ctx: UnsafeMutableRawPointer?) -> Unmanaged<HostServices>? {
        ctx.map { Unmanaged<HostServices>.fromOpaque($0) }
    }
}

extension sss_str {
    /// The bytes as a Swift string (invalid UTF-8 is repaired); empty for a NULL pointer.
    var string: String {
        guard let ptr, len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: ptr, count: Int(len)), as: UTF8.self)
    }
}

private func level(_ raw: UInt32) -> Logger.Level {
    switch raw {
    case SSS_LOG_TRACE: .trace
    case SSS_LOG_DEBUG: .debug
    case SSS_LOG_INFO: .info
    case SSS_LOG_WARN: .warning
    default: .error
    }
}

private let hostLog: @convention(c) (UnsafeMutableRawPointer?, UInt32, sss_str) -> Void = { ctx, lvl, msg in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.logger.log(level: level(lvl), "\(msg.string)") }
}

private let hostLogEnabled: @convention(c) (UnsafeMutableRawPointer?, UInt32) -> UInt32 = { ctx, lvl in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.logger.logLevel <= level(lvl) ? 1 : 0 } ?? 0
}

private let hostMonotonic: @convention(c) (UnsafeMutableRawPointer?) -> UInt64 = { ctx in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.clock.monotonicNanoseconds() } ?? 0
}

private let hostWall: @convention(c) (UnsafeMutableRawPointer?) -> UInt64 = { ctx in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.clock.wallNanoseconds() } ?? 0
}

private let hostMetricDefine: @convention(c) (
    UnsafeMutableRawPointer?, UInt32, sss_str, sss_str, UnsafePointer<sss_str>?, UInt32,
    UnsafeMutablePointer<UInt32>?
) -> sss_status = { ctx, kind, name, help, labels, labelCount, outID in
    guard let services = HostServices.from(ctx), let outID,
          let metricKind = MetricKind(rawValue: kind), name.len > 0
    else { return SSS_E_ARGUMENT }
    var pairs: [(String, String)] = []
    if let labels, labelCount > 0 {
        for i in 0..<Int(labelCount) {
            pairs.append((labels[2 * i].string, labels[2 * i + 1].string))
        }
    }
    return services._withUnsafeGuaranteedRef { s in
        outID.pointee = s.metrics.define(kind: metricKind, name: name.string, help: help.string,
                                         labels: s.metricLabels + pairs)
        return SSS_OK
    }
}

private let hostMetricAdd: @convention(c) (UnsafeMutableRawPointer?, UInt32, Int64) -> Void = { ctx, id, delta in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.metrics.add(id, delta) }
}

private let hostMetricSet: @convention(c) (UnsafeMutableRawPointer?, UInt32, Double) -> Void = { ctx, id, value in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.metrics.set(id, value) }
}

private let hostMetricObserve: @convention(c) (UnsafeMutableRawPointer?, UInt32, Double) -> Void = { ctx, id, value in
    HostServices.from(ctx)?._withUnsafeGuaranteedRef { $0.metrics.observe(id, value) }
}

private let hostPostClose: @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32) -> sss_status = { ctx, conn, reason in
    guard let services = HostServices.from(ctx) else { return SSS_E_ARGUMENT }
    return services._withUnsafeGuaranteedRef { s in
        guard let poster = s.poster else { return SSS_E_UNSUPPORTED }
        guard reason <= SSS_REASON_LIMIT_REACHED || reason >= SSS_REASON_CUSTOM else {
            s.faults.once("post reason") { s.logger.warning("stage broke the ABI: conn_post_close with reason code \(reason), which the ABI does not define; refused") }
            return SSS_E_ARGUMENT
        }
        return poster.postClose(connectionID: conn, reasonCode: reason) ? SSS_OK : SSS_E_NOT_FOUND
    }
}

private let hostPostResume: @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32) -> sss_status = { ctx, conn, dir in
    guard let services = HostServices.from(ctx) else { return SSS_E_ARGUMENT }
    guard dir == SSS_DIR_UP || dir == SSS_DIR_DOWN else { return SSS_E_ARGUMENT }
    return services._withUnsafeGuaranteedRef { s in
        guard let poster = s.poster else { return SSS_E_UNSUPPORTED }
        return poster.postResume(connectionID: conn, direction: dir) ? SSS_OK : SSS_E_NOT_FOUND
    }
}

private let hostPostVerdict: @convention(c) (UnsafeMutableRawPointer?, UInt64, UInt32, UInt32, sss_str) -> sss_status = { ctx, conn, verdict, reason, text in
    guard let services = HostServices.from(ctx) else { return SSS_E_ARGUMENT }
    return services._withUnsafeGuaranteedRef { s in
        guard let poster = s.poster else { return SSS_E_UNSUPPORTED }
        guard verdict == SSS_ACCEPT || verdict == SSS_REJECT else {
            s.faults.once("post verdict") { s.logger.warning("stage broke the ABI: conn_post_verdict with verdict \(verdict), which is neither ACCEPT nor REJECT; refused") }
            return SSS_E_ARGUMENT
        }
        let posted = PostedVerdict(stage: ObjectIdentifier(s), verdict: verdict, reasonCode: reason, text: text.string)
        return poster.postVerdict(connectionID: conn, posted) ? SSS_OK : SSS_E_NOT_FOUND
    }
}

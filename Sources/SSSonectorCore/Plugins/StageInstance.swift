import Locking
import ConfigValues
import CrashReport
import Glibc
import Logging
import StageABI
import Synchronization

/// One created stage instance in a pipeline's chain: the plugin's `inst` pointer, the hooks it
/// serves, the events it asked for, and the host services bound to it.
///
/// Connection hooks are called by `ConnectionChain`; this type owns the instance's life cycle
/// (create, destroy) and the control-thread hooks (tick, stats, control).
public final class StageInstance: @unchecked Sendable {  // inst is thread-safe by ABI contract
    /// The stage's `name` in the pipeline.
    public let name: String
    public let type: StageType
    /// Events this instance wants (subset of the type's).
    public let events: StageEvents
    public let tickIntervalMilliseconds: UInt32
    public let services: HostServices
    /// The plugin's instance pointer (for tools that call hooks directly, such as the hook
    /// micro-benchmark; the host itself goes through `ConnectionChain`).
    public let inst: UnsafeMutableRawPointer?
    /// The type's hook table as this host read it.
    public let hooks: sss_stage_type
    private var destroyed = false
    /// The name as a C string for the crash report (see `sss_crash_report.h`); lives as long
    /// as the instance.
    let crashReportName: UnsafePointer<CChar>

    /// Creates an instance through the type's `create` hook. Throws `PluginError.configRejected`
    /// with the stage's own error text when it rejects its config.
    public init(
        type: StageType, name: String, pipeline: String, configJSON: String,
        upstreams: UpstreamSnapshot, threadCount: Int, services: HostServices
    ) throws(PluginError) {
        self.name = name
        self.type = type
        self.services = services
        self.hooks = type.descriptor
        let cName = UnsafePointer(strdup(name)!)
        self.crashReportName = cName
        var result = sss_create_result(
            struct_size: UInt32(MemoryLayout<sss_create_result>.size), tick_interval_ms: 0,
            inst: nil, events: type.supportedEvents.rawValue)
        var errorText = [CChar](repeating: 0, count: 1024)
        let status: sss_status = pipeline.withSSSString { pipelineName in
            name.withSSSString { instanceName in
                type.name.withSSSString { typeName in
                    configJSON.withSSSString { config in
                        errorText.withUnsafeMutableBufferPointer { err in
                            var args = sss_create_args(
                                struct_size: UInt32(MemoryLayout<sss_create_args>.size),
                                thread_count: UInt32(threadCount), host: services.api,
                                pipeline_name: pipelineName, instance_name: instanceName,
                                type_name: typeName, config_json: config,
                                upstreams: upstreams.staticView,
                                err_buf: err.baseAddress, err_cap: UInt64(err.count))
                            sss_hook_enter(cName, UInt32(SSS_HOOK_CREATE))
                            defer { sss_hook_leave() }
                            return type.descriptor.create!(&args, &result)
                        }
                    }
                }
            }
        }
        guard status == SSS_OK else {
            free(UnsafeMutablePointer(mutating: cName))
            let text = String(nulTerminated: errorText)
            throw PluginError(.configRejected, library: type.library,
                              text.isEmpty ? "create failed with status \(status)" : text)
        }
        // An instance may narrow its events, never widen them beyond what the type declared.
        self.events = StageEvents(rawValue: result.events).intersection(type.supportedEvents)
        self.tickIntervalMilliseconds = events.contains(.tick) ? result.tick_interval_ms : 0
        self.inst = result.inst
    }

    /// Destroys the instance. Call once, after every connection that entered it has closed.
    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        sss_hook_enter(crashReportName, UInt32(SSS_HOOK_DESTROY))
        hooks.destroy?(inst)
        sss_hook_leave()
    }

    deinit { free(UnsafeMutablePointer(mutating: crashReportName)) }

    /// Runs the tick hook (control thread).
    public func tick(now: UInt64) {
        guard events.contains(.tick), let onTick = hooks.on_tick else { return }
        sss_hook_enter(crashReportName, UInt32(SSS_HOOK_TICK))
        onTick(inst, now)
        sss_hook_leave()
    }

    /// The stage's stats as one JSON text, or nil when it has none or wrote nothing. A stage
    /// whose stats are not JSON, or too large, gets `{"error": ...}` in their place and one log
    /// line (per kind of fault, not per scrape).
    public func statsJSON() -> String? {
        guard events.contains(.stats), let onStats = hooks.on_stats else { return nil }
        let collector = SinkCollector()
        sss_hook_enter(crashReportName, UInt32(SSS_HOOK_STATS))
        let status = collector.withSink { onStats(inst, $0) }
        sss_hook_leave()
        guard status == SSS_OK, !collector.bytes.isEmpty else { return nil }
        let problem: String
        if collector.overflowed {
            problem = "stats larger than \(SinkCollector.defaultLimit) bytes"
        } else if (try? JSONValue.parse(collector.text)) == nil {
            problem = "stats that are not JSON"
        } else {
            return collector.text
        }
        faults.once(collector.overflowed ? "stats size" : "stats JSON") { services.logger.warning("stage wrote \(problem); shown as an error in /stats") }
        return JSONValue.object([("error", .string("the stage wrote \(problem)"))]).jsonText
    }

    /// Whether the stage reports upstream status (ABI 1.2, `on_upstream_status`).
    public var reportsUpstreamStatus: Bool { events.contains(.upstreamStatus) && hooks.on_upstream_status != nil }

    /// Asks the stage which upstreams of `set` are unhealthy or paused: ORs its `SSS_STATUS_*`
    /// bits into `status` (one byte per item). Any thread; the stage must be thread-safe here.
    func reportUpstreamStatus(_ set: UnsafePointer<sss_upstream_set>, now: UInt64, into status: UnsafeMutablePointer<UInt8>) {
        guard events.contains(.upstreamStatus), let onStatus = hooks.on_upstream_status else { return }
        let count = Int(set.pointee.count)
        let mine = UnsafeMutablePointer<UInt8>.allocate(capacity: max(count, 1))
        defer { mine.deallocate() }
        mine.initialize(repeating: 0, count: max(count, 1))
        sss_hook_enter(crashReportName, UInt32(SSS_HOOK_STATUS))
        onStatus(inst, set, now, mine)
        sss_hook_leave()
        let known = UInt8(SSS_STATUS_UNHEALTHY | SSS_STATUS_PAUSED)
        for i in 0..<count { status[i] |= mine[i] & known }
    }

    /// Sends a JSON control command; returns the status, the stage's answer, and whether the
    /// answer was cut at the sink's limit.
    public func control(_ command: String) -> (status: Int32, answer: String, overflowed: Bool) {
        guard events.contains(.control), let onControl = hooks.on_control else {
            return (SSS_E_UNSUPPORTED, #"{"error":"stage has no control hook"}"#, false)
        }
        let collector = SinkCollector()
        sss_hook_enter(crashReportName, UInt32(SSS_HOOK_CONTROL))
        let status = command.withSSSString { cmd in collector.withSink { onControl(inst, cmd, $0) } }
        sss_hook_leave()
        return (status, collector.text, collector.overflowed)
    }

    /// Faults of this stage already logged (see `StageFaults`).
    var faults: StageFaults { services.faults }
}

/// Collects what a stage writes into an `sss_sink`, up to `limit` bytes: past that a write is
/// refused (`SSS_E_NOMEM`) and `overflowed` is set, so a runaway stage cannot fill the memory.
final class SinkCollector {
    static let defaultLimit = 1 << 20
    private(set) var bytes: [UInt8] = []
    private(set) var overflowed = false
    private let limit: Int
    var text: String { String(decoding: bytes, as: UTF8.self) }

    init(limit: Int = SinkCollector.defaultLimit) { self.limit = limit }

    func withSink<R>(_ body: (UnsafePointer<sss_sink>) -> R) -> R {
        var sink = sss_sink(ctx: Unmanaged.passUnretained(self).toOpaque(), write: { ctx, ptr, len in
            guard let ctx else { return SSS_E_ARGUMENT }
            let collector = Unmanaged<SinkCollector>.fromOpaque(ctx).takeUnretainedValue()
            guard len > 0 else { return SSS_OK }
            guard let ptr else { return SSS_E_ARGUMENT }
            guard len <= UInt64(collector.limit - collector.bytes.count) else {
                collector.overflowed = true
                return SSS_E_NOMEM
            }
            collector.bytes.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: Int(len)))
            return SSS_OK
        })
        return withExtendedLifetime(self) { body(&sink) }
    }
}

extension String {
    /// Calls `body` with this string as a NUL-terminated `sss_str` valid for the call.
    func withSSSString<R>(_ body: (sss_str) -> R) -> R {
        let length = UInt64(utf8.count)
        return withCString { body(sss_str(ptr: $0, len: length)) }
    }
}

/// The kinds of misbehaviour one stage instance was already logged for: a plugin that breaks
/// the ABI's rules on every connection gets one log line per kind of fault, not one per
/// connection (the host clamps or refuses the value each time).
final class StageFaults: Sendable {
    private let seen = Locked<Set<String>>([])

    /// Runs `log` the first time `kind` is reported.
    func once(_ kind: String, _ log: () -> Void) {
        if seen.withLock({ $0.insert(kind).inserted }) { log() }
    }
}

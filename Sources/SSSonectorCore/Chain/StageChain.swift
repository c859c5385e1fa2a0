import CrashReport
import Glibc
import StageABI

/// The hook table of one stage, flattened into plain values so the per-connection code reads
/// it without reference counting.
struct StageHooks {
    let inst: UnsafeMutableRawPointer?
    let events: UInt64
    let onOpen: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<sss_open_result>?) -> UInt32)?
    let onFilter: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_set>?, UnsafeMutablePointer<UInt8>?) -> Void)?
    let onSelect: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_set>?, UnsafePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> UInt32)?
    let onResult: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_upstream_result>?, UnsafeMutablePointer<sss_retry_decision>?) -> Void)?
    let onData: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<sss_data_args>?, UnsafeMutablePointer<sss_data_result>?) -> UInt32)?
    let onClose: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<sss_conn>?, UnsafeMutableRawPointer?, UnsafePointer<sss_close_info>?) -> Void)?
    /// The stage's name for the crash report (`sss_hook_enter`).
    let name: UnsafePointer<CChar>
    /// Built for ABI 1.3 or later: its on_open may answer SSS_PENDING.
    let mayPend: Bool
    /// Identifies the instance's host services: whose posted verdicts settle its pending opens.
    let servicesID: ObjectIdentifier

    init(_ stage: StageInstance) {
        inst = stage.inst
        name = stage.crashReportName
        events = stage.events.rawValue
        mayPend = stage.type.abiMinor >= 3
        servicesID = ObjectIdentifier(stage.services)
        let h = stage.hooks
        onOpen = h.on_open
        onFilter = h.on_filter_upstreams
        onSelect = h.on_select_upstream
        onResult = h.on_upstream_result
        onData = h.on_data
        onClose = h.on_close
    }
}

/// A pipeline's ordered stages, with the hook tables that connections call. Immutable; a
/// reload builds a new chain. Shared by every connection of the pipeline.
public final class StageChain: @unchecked Sendable {  // immutable after init
    public let stages: [StageInstance]
    let hooks: ContiguousArray<StageHooks>
    /// Union of every stage's events: what any connection may need.
    public let events: StageEvents
    /// Pipeline name and listener text, NUL-terminated, for `sss_conn`.
    let pipelineName: UnsafeMutablePointer<CChar>
    let listenerText: UnsafeMutablePointer<CChar>
    let pipelineNameLength: Int
    let listenerTextLength: Int
    /// The host's round-robin position when no stage selects.
    let roundRobin = RoundRobinCounter()

    public init(stages: [StageInstance], pipeline: String, listener: String) {
        self.stages = stages
        self.hooks = ContiguousArray(stages.map(StageHooks.init))
        self.events = stages.reduce(StageEvents()) { $0.union($1.events) }
        pipelineName = strdup(pipeline)
        listenerText = strdup(listener)
        pipelineNameLength = pipeline.utf8.count
        listenerTextLength = listener.utf8.count
    }

    deinit {
        free(pipelineName)
        free(listenerText)
    }

    /// Destroys every instance (after every connection has closed).
    public func destroyAll() {
        for stage in stages { stage.destroy() }
    }

    // MARK: containment of misbehaving stages

    /// The longest delay a stage may ask for (a retry, a re-offer): longer ones are clamped, so
    /// a stage's absurd answer cannot park a connection for ever.
    static let maximumDelay: UInt64 = 60_000_000_000

    /// Logs, once per `kind` of fault for stage `index`, that it broke the ABI and what the
    /// host did about it.
    func fault(_ index: Int, kind: String, _ what: @autoclosure () -> String) {
        let stage = stages[index]
        stage.faults.once(kind) { stage.services.logger.warning("stage broke the ABI: \(what())") }
    }

    /// `code` if it is a reason the ABI defines (or a custom one), else `policy`, logged.
    func checkedReason(_ code: UInt32, stage index: Int) -> UInt32 {
        if code <= SSS_REASON_LIMIT_REACHED || code >= SSS_REASON_CUSTOM { return code }
        fault(index, kind: "reason code", "reason code \(code) is outside the ABI; reported as policy")
        return SSS_REASON_POLICY
    }
}

import Synchronization

/// A shared counter for the host's default round robin.
final class RoundRobinCounter: Sendable {
    private let next = Atomic<UInt64>(0)
    func take() -> UInt64 { next.wrappingAdd(1, ordering: .relaxed).oldValue }
}

import StageKit
import Synchronization

/// Example Swift stage: closes a connection once it has carried `max_bytes` (counted in the
/// chosen directions) or lived `max_duration`. Shows per-connection state, data grants,
/// ticks, posting a close from the control thread, stats and config validation.
///
/// ```json
/// { "name": "cap", "plugin": "bytecap",
///   "config": { "max_bytes": "10MiB", "max_duration": "1h", "direction": "both" } }
/// ```
final class ByteCapStage: OpenHook, DataHook, CloseHook, TickHook, StatsHook {
    static let typeName = "bytecap"
    static let summary = "closes connections after max_bytes bytes or max_duration"

    let maxBytes: UInt64?
    let maxDuration: UInt64?
    let directions: DataDirections
    let host: StageHost
    /// Open connections and when they started, for the duration check on tick.
    private let open = Locked<[UInt64: UInt64]>([:])
    private let closedByBytes = Atomic<UInt64>(0)
    private let closedByTime = Atomic<UInt64>(0)

    /// Bytes one connection has carried (touched only on that connection's loop).
    final class Counter {
        var bytes: UInt64 = 0
    }

    init(setup: StageSetup) throws {
        let config = try setup.configObject()
        maxBytes = try config.size("max_bytes")
        maxDuration = try config.duration("max_duration", minimum: 1_000_000)
        let direction = try config.choice("direction", ["both", "up", "down"], default: "both")
        try config.finish()
        guard maxBytes != nil || maxDuration != nil else {
            throw ConfigError(path: "", "set max_bytes, max_duration or both")
        }
        if maxBytes == 0 { throw ConfigError(path: "max_bytes", "expected at least 1 byte") }
        directions = direction == "up" ? .up : direction == "down" ? .down : .both
        host = setup.host
    }

    var tickIntervalMilliseconds: UInt32 { maxDuration == nil ? 0 : 100 }
    var disabledEvents: StageEventSet {
        var off: StageEventSet = maxDuration == nil ? [.tick] : []
        if maxBytes == nil { off.formUnion(.data) }
        if !directions.contains(.up) { off.insert(.dataUp) }
        if !directions.contains(.down) { off.insert(.dataDown) }
        return off
    }

    func open(_ connection: StageConnection) -> OpenVerdict {
        connection.setState(Counter())
        if maxDuration != nil { open.withLock { $0[connection.id] = connection.acceptedAt } }
        return .accept
    }

    func data(_ connection: StageConnection, _ offer: DataOffer) -> DataDecision {
        guard let maxBytes else { return .passAll }
        return connection.withState(as: Counter.self) { counter -> DataDecision in
            let room = maxBytes - counter.bytes
            if room == 0 {
                closedByBytes.wrappingAdd(1, ordering: .relaxed)
                return .close(.limitReached)
            }
            let granted = min(room, offer.available)
            counter.bytes += granted
            return granted == offer.available ? .passAll : .pass(granted, retryAfterNanoseconds: 0)
        } ?? .passAll
    }

    func close(_ connection: StageConnection, _ summary: CloseSummary) {
        if maxDuration != nil { _ = open.withLock { $0.removeValue(forKey: connection.id) } }
    }

    func tick(now: UInt64) {
        guard let maxDuration else { return }
        let expired = open.withLock { table in table.filter { now &- $0.value >= maxDuration }.map(\.key) }
        for id in expired where host.closeConnection(id, reason: .limitReached) {
            closedByTime.wrappingAdd(1, ordering: .relaxed)
            _ = open.withLock { $0.removeValue(forKey: id) }
        }
    }

    func stats() -> JSONValue {
        [
            "max_bytes": maxBytes.map { .int($0) } ?? .null,
            "max_duration_seconds": maxDuration.map { .number(Double($0) / 1e9) } ?? .null,
            "closed_by_bytes": .int(closedByBytes.load(ordering: .relaxed)),
            "closed_by_duration": .int(closedByTime.load(ordering: .relaxed)),
        ]
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "bytecap", version: "1.0.0", stages: [ByteCapStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

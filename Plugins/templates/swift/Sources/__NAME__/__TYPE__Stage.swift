import StageKit
import Synchronization

/// Paces each connection: at most `bytes_per_second` bytes per second in each direction, with
/// a burst of one second's worth. Written by `sssonector plugin new`; shows a data hook that
/// grants part of what is offered and asks for the rest again after a delay (the host stops
/// reading meanwhile: TCP backpressure, no byte dropped), typed per-connection state, config
/// validation with the key's path, and stats.
final class __TYPE__Stage: OpenHook, DataHook, StatsHook {
    static let typeName = "__NAME__"
    static let summary = "paces each connection to bytes_per_second"

    /// Bytes per second, each direction.
    let rate: Double
    private let connections = Atomic<UInt64>(0)
    private let bytes = Atomic<UInt64>(0)
    private let delayed = Atomic<UInt64>(0)

    init(setup: StageSetup) throws {
        let config = try setup.configObject()
        rate = try config.rate("bytes_per_second", default: 1_048_576)
        try config.finish()  // any other key is an error with its path
    }

    /// One connection's buckets: a class, so the hooks borrow it without copying.
    final class Pace {
        var tokens: [Double]
        var updatedAt: [UInt64]
        init(rate: Double, now: UInt64) {
            tokens = [rate, rate]
            updatedAt = [now, now]
        }
    }

    func open(_ connection: StageConnection) -> OpenVerdict {
        connection.setState(Pace(rate: rate, now: connection.now))
        connections.wrappingAdd(1, ordering: .relaxed)
        return .accept
    }

    func data(_ connection: StageConnection, _ offer: DataOffer) -> DataDecision {
        let d = offer.direction == .up ? 0 : 1
        return connection.withState(as: Pace.self) { pace in
            pace.tokens[d] = min(rate, pace.tokens[d] + Double(offer.now - pace.updatedAt[d]) / 1e9 * rate)
            pace.updatedAt[d] = offer.now
            let grant = min(offer.available, UInt64(pace.tokens[d]))
            pace.tokens[d] -= Double(grant)
            bytes.wrappingAdd(grant, ordering: .relaxed)
            guard grant < offer.available else { return .passAll }
            delayed.wrappingAdd(1, ordering: .relaxed)
            let missing = Double(min(offer.available - grant, 1460))
            return .pass(grant, retryAfterNanoseconds: UInt64(missing / rate * 1e9) + 1)
        } ?? .passAll
    }

    func stats() -> JSONValue {
        ["bytes_per_second": .number(rate), "connections": .int(connections.load(ordering: .relaxed)),
         "bytes": .int(bytes.load(ordering: .relaxed)), "delayed": .int(delayed.load(ordering: .relaxed))]
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "__NAME__", version: "0.1.0", stages: [__TYPE__Stage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

import StageKit
import Synchronization

/// `breaker` (docs/pipeline-reference.md, "Stock stages"): a circuit per upstream. Open circuits leave the eligible set; when
/// every circuit is open, connections are rejected `circuit_open` at once, without a connect.
final class BreakerStage: OpenHook, UpstreamFilterHook, UpstreamResultHook, CloseHook, TickHook, StatsHook, ControlHook,
    UpstreamStatusHook {
    static let typeName = "breaker"
    static let summary = "circuit breaker per upstream: sliding failure window, half-open trials"

    let settings: Circuit.Settings
    let host: StageHost
    /// Circuits by upstream id, and the last set seen (ids and names, in order).
    private let circuits = Locked<[UInt64: Circuit]>([:])
    private let known = Locked<[(id: UInt64, name: String)]>([])
    private let generation = Atomic<UInt64>(0)
    private let openGauge: StageHost.Metric
    private let trips: StageHost.Metric
    private let rejectedMetric: StageHost.Metric

    /// Per-connection, only while it holds half-open trials reserved at filter time.
    final class Reservations {
        var ids: [UInt64] = []
    }

    init(setup: StageSetup) throws {
        let c = try setup.configObject()
        settings = Circuit.Settings(
            maxFailures: try c.int("max_failures", default: 5, in: 1...100_000),
            failureWindow: try c.duration("failure_window", default: 60_000_000_000, minimum: 1_000_000),
            resetTimeout: try c.duration("reset_timeout", default: 10_000_000_000, minimum: 1_000_000),
            halfOpenMaxCalls: try c.int("half_open_max_calls", default: 1, in: 1...10_000))
        try c.finish()
        host = setup.host
        let list = setup.upstreams.map { (id: $0.id, name: $0.name) }
        known.withLock { $0 = list }
        circuits.withLock { table in for u in list { table[u.id] = Circuit(name: u.name) } }
        openGauge = host.metric(.gauge, "breaker_open_circuits", help: "Circuits open now.")
        trips = host.metric(.counter, "breaker_trips_total", help: "Times a circuit opened.")
        rejectedMetric = host.metric(.counter, "breaker_rejected_total", help: "Connections rejected because every circuit was open.")
    }

    var tickIntervalMilliseconds: UInt32 { 250 }

    func open(_ c: StageConnection) -> OpenVerdict {
        let now = c.now
        // The circuits hold every known upstream; no allocation on this per-connection path.
        let allOpen = circuits.withLock { table -> Bool in
            guard !table.isEmpty else { return false }
            var blocked = true
            for i in table.indices {
                if table.values[i].state == .open, now &- table.values[i].openedAt >= settings.resetTimeout {
                    table.values[i].advance(now: now, settings: settings, wall: host.wallNow())
                }
                if table.values[i].state != .open { blocked = false }
            }
            if blocked { for i in table.indices { table.values[i].countRejection() } }
            return blocked
        }
        if allOpen {
            rejectedMetric.increment()
            return .reject(.circuitOpen, "every upstream's circuit is open")
        }
        return .accept
    }

    func filterUpstreams(_ c: StageConnection, _ upstreams: UpstreamList, eligible: inout EligibleUpstreams) {
        if generation.load(ordering: .relaxed) != upstreams.generation {
            let list = upstreams.map { (id: $0.id, name: $0.name) }
            known.withLock { $0 = list }
            circuits.withLock { table in
                var next: [UInt64: Circuit] = [:]
                for u in list { next[u.id] = table[u.id] ?? Circuit(name: u.name) }
                table = next
            }
            generation.store(upstreams.generation, ordering: .relaxed)
        }
        let now = c.now, wall = host.wallNow()
        var reserved: [UInt64] = []
        let blocked = circuits.withLock { table -> [Int] in
            var out: [Int] = []
            for i in eligible.indexes {
                let id = upstreams[i].id
                guard var circuit = table[id] else { continue }
                if circuit.admit(now: now, settings: settings, wall: wall) {
                    if circuit.state == .halfOpen { reserved.append(id) }  // admitted as a trial
                } else {
                    out.append(i)
                }
                table[id] = circuit
            }
            return out
        }
        for i in blocked { eligible.remove(i) }
        guard !reserved.isEmpty else { return }
        if c.withState(as: Reservations.self, { $0.ids += reserved }) == nil {
            let box = Reservations()
            box.ids = reserved
            c.setState(box)
        }
    }

    func upstreamResult(_ c: StageConnection, _ r: ConnectResult) -> RetryAdvice {
        let reserved = c.withState(as: Reservations.self) { box -> [UInt64] in
            defer { box.ids.removeAll() }
            return box.ids
        } ?? []
        let now = c.now, wall = host.wallNow()
        let tripped = circuits.withLock { table -> Bool in
            for id in reserved where id != r.upstreamID { table[id]?.release() }
            guard let slot = table.index(forKey: r.upstreamID) else { return false }
            let before = table.values[slot].state
            // Mutated in place: a copy would retain (and on a failure copy) its arrays.
            table.values[slot].record(success: r.succeeded, reserved: reserved.contains(r.upstreamID), now: now,
                                      settings: settings, wall: wall)
            return before != .open && table.values[slot].state == .open
        }
        if tripped {
            trips.increment()
            host.log(.warn, "circuit opened for upstream id \(r.upstreamID) after connect \(r.outcome)")
        }
        return .noOpinion
    }

    func close(_ c: StageConnection, _ summary: CloseSummary) {
        let reserved = c.withState(as: Reservations.self) { $0.ids } ?? []
        guard !reserved.isEmpty else { return }
        circuits.withLock { table in for id in reserved { table[id]?.release() } }
    }

    /// A circuit that is not closed pauses its upstream for the host: no warm-pool refills (a
    /// half-open circuit's trials must be real connections), and the pool's idle ones close.
    func upstreamStatus(_ upstreams: UpstreamList, now: UInt64, report: inout UpstreamStatusReport) {
        let paused = circuits.withLock { table in upstreams.indices.filter { (table[upstreams[$0].id]?.state ?? .closed) != .closed } }
        for i in paused { report.markPaused(i) }
    }

    func tick(now: UInt64) {
        let wall = host.wallNow()
        let open = circuits.withLock { table -> Int in
            for id in table.keys { table[id]!.advance(now: now, settings: settings, wall: wall) }
            return table.values.filter { $0.state == .open }.count
        }
        openGauge.set(Double(open))
    }

    func stats() -> JSONValue {
        let now = host.now()
        let order = known.withLock { $0 }
        let table = circuits.withLock { $0 }
        let ups = order.compactMap { u -> (String, JSONValue)? in
            guard let circuit = table[u.id] else { return nil }
            return (u.name, [
                "state": .string(circuit.state.rawValue),
                "failures_in_window": .int(circuit.failuresInWindow(now: now, settings: settings)),
                "transitions": .object(circuit.transitions.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
                "rejections": .int(circuit.rejections),
                "last_change_unix_seconds": circuit.lastChangeWall == 0 ? .null : .number(Double(circuit.lastChangeWall) / 1e9),
            ])
        }
        return ["upstreams": .object(ups)]
    }

    func control(_ command: JSONValue) -> ControlAnswer {
        do {
            let c = try ConfigObject(command, path: "")
            let op = try c.choice("op", ["reset", "trip"], default: "")
            let name = try c.requiredString("upstream")
            try c.finish()
            guard let id = known.withLock({ $0.first { $0.name == name }?.id }) else {
                return .badCommand("upstream: no upstream named \"\(name)\"")
            }
            let now = host.now(), wall = host.wallNow()
            let state = circuits.withLock { table -> String in
                if op == "trip" { table[id]?.trip(now: now, wall: wall) } else { table[id]?.reset(wall: wall) }
                return table[id]?.state.rawValue ?? "unknown"
            }
            return .ok(["upstream": .string(name), "state": .string(state)])
        } catch {
            return .badCommand(error.description)
        }
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "breaker", version: "1.0.0", stages: [BreakerStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

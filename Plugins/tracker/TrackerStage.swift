import StageABI
import StageKit
import Synchronization

/// `tracker` (docs/pipeline-reference.md, "Stock stages"): connection statistics from open, upstream results and close. The
/// close info is the source of truth for bytes and duration: no per-chunk hook.
///
/// A connection rejected by an earlier stage never enters later ones; put the tracker first in
/// the chain to count every rejection by reason and stage.
final class TrackerStage: OpenHook, UpstreamResultHook, CloseHook, StatsHook, ControlHook {
    static let typeName = "tracker"
    static let summary = "connection statistics: active, peak, totals, rejections, bytes, duration percentiles"

    let host: StageHost
    private let shards: [ShardBox]
    private let active = Atomic<Int64>(0)
    private let peak = Locked<(count: Int64, wallNanoseconds: UInt64)>((0, 0))
    private let upstreamNames = Locked<[UInt64: String]>([:])
    private let metrics: TrackerMetrics

    final class ShardBox: Sendable {
        let shard = Locked(TrackerShard())
    }

    init(setup: StageSetup) throws {
        let c = try setup.configObject()
        try c.finish()
        host = setup.host
        shards = (0..<max(1, setup.threadCount)).map { _ in ShardBox() }
        upstreamNames.withLock { names in for u in setup.upstreams { names[u.id] = u.name } }
        metrics = TrackerMetrics(host: setup.host)
    }

    private func shard(_ c: StageConnection) -> ShardBox { shards[c.threadIndex % shards.count] }

    func open(_ c: StageConnection) -> OpenVerdict {
        let now = active.wrappingAdd(1, ordering: .relaxed).newValue
        peak.withLock { p in
            if now > p.count { p = (now, host.wallNow()) }
        }
        shard(c).shard.withLock { $0.countAccept(atSecond: c.now / 1_000_000_000) }
        metrics.active.set(Double(now))
        metrics.accepted.increment()
        return .accept  // no per-connection state: close reads the client and upstream from the connection and the summary
    }

    func upstreamResult(_ c: StageConnection, _ r: ConnectResult) -> RetryAdvice {
        if r.succeeded {
            shard(c).shard.withLock { s in
                s.upstreamActive[r.upstreamID, default: 0] += 1
                s.upstreamTotal[r.upstreamID, default: 0] += 1
                if r.pooled { s.upstreamPooled[r.upstreamID, default: 0] += 1 }
                s.connectLatencies.record(r.latencyNanoseconds)
            }
        } else {
            shard(c).shard.withLock { $0.failedConnects += 1 }
            metrics.failedConnects.increment()
        }
        return .noOpinion
    }

    func close(_ c: StageConnection, _ s: CloseSummary) {
        let now = active.wrappingSubtract(1, ordering: .relaxed).newValue
        metrics.active.set(Double(now))
        let client = c.peerIP
        let upstream = s.upstreamID  // 0 when it never connected
        let reason: String? = s.cause == .rejected || s.cause == .noUpstream ? reasonName(s) : nil
        shard(c).shard.withLock { shard in
            shard.bytesUp += s.bytesUp
            shard.bytesDown += s.bytesDown
            shard.durations.record(s.durationNanoseconds)
            if upstream != 0 { shard.upstreamActive[upstream, default: 0] -= 1 }
            shard.clients.add(client, connections: 1, bytes: s.bytesUp + s.bytesDown)
            if let reason {
                shard.rejectedByReason[reason, default: 0] += 1
                if !s.rejectedByName.isEmpty { shard.rejectedByStage[s.rejectedByName, default: 0] += 1 }
            }
        }
        metrics.bytesUp.add(Int64(clamping: s.bytesUp))
        metrics.bytesDown.add(Int64(clamping: s.bytesDown))
        metrics.duration.observe(Double(s.durationNanoseconds) / 1e9)
        if let reason { metrics.rejected(reason).increment() }
    }

    private func reasonName(_ s: CloseSummary) -> String {
        if s.cause == .noUpstream { return StageReason.noUpstream.name }
        let name = StageReason.name(ofCode: s.reasonCode)
        return name == "unknown" || name == "none" ? StageReason.policy.name : name
    }

    private func merged() -> TrackerShard {
        var total = TrackerShard()
        for box in shards {
            let s = box.shard.withLock { $0 }
            total.accepted += s.accepted
            total.failedConnects += s.failedConnects
            total.bytesUp += s.bytesUp
            total.bytesDown += s.bytesDown
            total.durations.merge(s.durations)
            total.connectLatencies.merge(s.connectLatencies)
            total.clients.merge(s.clients)
            for (k, v) in s.rejectedByReason { total.rejectedByReason[k, default: 0] += v }
            for (k, v) in s.rejectedByStage { total.rejectedByStage[k, default: 0] += v }
            for (k, v) in s.upstreamActive { total.upstreamActive[k, default: 0] += v }
            for (k, v) in s.upstreamTotal { total.upstreamTotal[k, default: 0] += v }
            for (k, v) in s.upstreamPooled { total.upstreamPooled[k, default: 0] += v }
        }
        return total
    }

    func stats() -> JSONValue {
        let t = merged()
        let second = host.now() / 1_000_000_000
        func rate(_ window: UInt64) -> JSONValue {
            let n = shards.reduce(UInt64(0)) { $0 + $1.shard.withLock { $0.accepts(lastSeconds: window, before: second) } }
            return .number(Double(n) / Double(window))
        }
        func seconds(_ ns: Double) -> JSONValue { .number(ns / 1e9) }
        let p = peak.withLock { $0 }
        let names = upstreamNames.withLock { $0 }
        let upstreams = Set(t.upstreamTotal.keys).union(t.upstreamActive.keys).sorted().map { id -> (String, JSONValue) in
            (names[id] ?? "id-\(id)", ["active": .int(t.upstreamActive[id] ?? 0), "total": .int(t.upstreamTotal[id] ?? 0),
                                        "pooled": .int(t.upstreamPooled[id] ?? 0)])
        }
        let clients = t.clients.values
        let byConnections = clients.sorted { $0.value.connections > $1.value.connections }.prefix(10)
        let byBytes = clients.sorted { $0.value.bytes > $1.value.bytes }.prefix(10)
        return [
            "active": .int(active.load(ordering: .relaxed)),
            "peak": .int(p.count),
            "peak_at_unix_seconds": .number(Double(p.wallNanoseconds) / 1e9),
            "accepted": .int(t.accepted),
            "rejected": .object(t.rejectedByReason.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
            "rejected_by_stage": .object(t.rejectedByStage.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) }),
            "failed_connects": .int(t.failedConnects),
            "pooled_connects": .int(t.upstreamPooled.values.reduce(0, +)),
            "bytes_up": .int(t.bytesUp),
            "bytes_down": .int(t.bytesDown),
            "duration_seconds": [
                "p50": seconds(t.durations.quantile(0.5)), "p90": seconds(t.durations.quantile(0.9)),
                "p99": seconds(t.durations.quantile(0.99)), "max": seconds(Double(t.durations.max)),
                "avg": seconds(t.durations.average),
            ],
            "connect_latency_seconds": ["avg": seconds(t.connectLatencies.average), "p99": seconds(t.connectLatencies.quantile(0.99))],
            "connections_per_second": ["1s": rate(1), "10s": rate(10), "60s": rate(60)],
            "upstreams": .object(upstreams),
            "top_clients_by_connections": .array(byConnections.map { ["client": .string($0.key), "connections": .int($0.value.connections)] }),
            "top_clients_by_bytes": .array(byBytes.map { ["client": .string($0.key), "bytes": .int($0.value.bytes)] }),
        ]
    }

    func control(_ command: JSONValue) -> ControlAnswer {
        guard command["op"] == "reset" else { return .badCommand(#"op: expected "reset""#) }
        for box in shards { box.shard.withLock { $0.resetTotals() } }
        return .ok(["reset": true, "active": .int(active.load(ordering: .relaxed))])
    }
}

/// The tracker's metrics, defined once at create (the control thread).
struct TrackerMetrics: Sendable {
    let active: StageHost.Metric
    let accepted: StageHost.Metric
    let failedConnects: StageHost.Metric
    let bytesUp: StageHost.Metric
    let bytesDown: StageHost.Metric
    let duration: StageHost.Metric
    private let rejections: [String: StageHost.Metric]

    static let reasons = StageReason.allCases.map(\.name) + [StageReason.name(ofCode: SSS_REASON_CUSTOM)]

    init(host: StageHost) {
        active = host.metric(.gauge, "tracker_connections_active", help: "Open connections seen by the tracker.")
        accepted = host.metric(.counter, "tracker_connections_total", help: "Connections that reached the tracker.")
        failedConnects = host.metric(.counter, "tracker_failed_connects_total", help: "Failed upstream connect attempts.")
        bytesUp = host.metric(.counter, "tracker_bytes_up_total", help: "Bytes from clients to upstreams.")
        bytesDown = host.metric(.counter, "tracker_bytes_down_total", help: "Bytes from upstreams to clients.")
        duration = host.metric(.histogram, "tracker_connection_duration_seconds", help: "Connection durations.")
        var r: [String: StageHost.Metric] = [:]
        for reason in Self.reasons {
            r[reason] = host.metric(.counter, "tracker_rejected_total", help: "Rejected connections by reason.",
                                    labels: [("reason", reason)])
        }
        rejections = r
    }

    func rejected(_ reason: String) -> StageHost.Metric { rejections[reason] ?? rejections["custom"]! }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "tracker", version: "1.0.0", stages: [TrackerStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

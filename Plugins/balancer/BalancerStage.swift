import StageKit
import Synchronization

/// `balancer` (docs/pipeline-reference.md, "Stock stages"): round robin, least connections or smooth weighted round robin over
/// healthy upstreams; active and passive health checks; failover to untried upstreams.
final class BalancerStage: UpstreamFilterHook, UpstreamSelectHook, UpstreamResultHook, UpstreamStatusHook, StatsHook {
    static let typeName = "balancer"
    static let summary = "round robin / least connections / smooth weighted round robin with health checks and failover"

    let config: BalancerConfig
    let host: StageHost
    /// Behind one short lock, shared with the health-check thread.
    private let state: Locked<BalancerState>
    private let generation = Atomic<UInt64>(0)
    private let checker: HealthChecker?

    init(setup: StageSetup) throws {
        config = try BalancerConfig(setup)
        host = setup.host
        var initial = BalancerState(healthyThreshold: config.healthyThreshold, unhealthyThreshold: config.unhealthyThreshold)
        initial.sync(setup.upstreams.map { ($0.id, $0.name, $0.address) })
        let state = Locked(initial)
        self.state = state
        if config.healthCheckInterval > 0 {
            let host = setup.host
            checker = HealthChecker(
                interval: config.healthCheckInterval, timeout: config.healthCheckTimeout,
                targets: { [state] in state.withLock { $0.upstreams.map { ($0.key, $0.value.address) } } },
                report: { [state] id, ok, error in
                    let change = state.withLock { $0.observe(id, success: ok, error: error, wall: host.wallNow()) }
                    if let change {
                        let name = state.withLock { $0.upstreams[id]?.name ?? "?" }
                        host.log(.info, "upstream \(name) is \(change) (active health check\(error.map { ": \($0)" } ?? ""))")
                    }
                })
        } else {
            checker = nil
        }
    }

    deinit { checker?.cancel() }

    private func syncIfChanged(_ upstreams: UpstreamList) {
        guard generation.load(ordering: .relaxed) != upstreams.generation else { return }
        let list = upstreams.map { ($0.id, $0.name, $0.address) }
        state.withLock { $0.sync(list) }
        generation.store(upstreams.generation, ordering: .relaxed)
    }

    func filterUpstreams(_ c: StageConnection, _ upstreams: UpstreamList, eligible: inout EligibleUpstreams) {
        syncIfChanged(upstreams)
        let unhealthy = state.withLock { s in upstreams.indices.filter { !s.isHealthy(upstreams[$0].id) } }
        for i in unhealthy { eligible.remove(i) }
    }

    func selectUpstream(_ c: StageConnection, _ upstreams: UpstreamList, eligible: EligibleUpstreams) -> UpstreamSelection {
        // `active` is the host's live count (it counts every connection, whichever stage chose it).
        let candidates = eligible.indexes.map {
            BalancerState.Candidate(index: $0, id: upstreams[$0].id, weight: upstreams[$0].weight, active: upstreams[$0].active)
        }
        let pick = state.withLock { $0.pick(config.strategy, from: candidates, setSize: upstreams.count) }
        return pick.map { .chosen($0) } ?? .reject
    }

    func upstreamResult(_ c: StageConnection, _ r: ConnectResult) -> RetryAdvice {
        if r.succeeded {
            let change = state.withLock { s -> String? in
                s.connected(r.upstreamID)
                return s.observe(r.upstreamID, success: true)
            }
            if let change { host.log(.info, "upstream id \(r.upstreamID) is \(change) (connect succeeded)") }
            return .noOpinion
        }
        let change = state.withLock { s -> String? in
            s.failed(r.upstreamID)
            return s.observe(r.upstreamID, success: false, error: "connect \(r.outcome)", wall: host.wallNow())
        }
        if let change { host.log(.warn, "upstream id \(r.upstreamID) is \(change) (passive: connect \(r.outcome))") }
        // Failover: up to max_retries more attempts; wait only when every eligible upstream
        // has been tried; never after the last failure.
        if r.attempt > config.maxRetries { return .giveUp }
        return r.remainingUntried > 0 ? .retry(afterNanoseconds: 0) : .retry(afterNanoseconds: config.retryTimeout)
    }

    /// Tells the host which upstreams fail their health checks, and notes the host's live
    /// `active` figures for the stats (the host asks just before every `/stats`).
    func upstreamStatus(_ upstreams: UpstreamList, now: UInt64, report: inout UpstreamStatusReport) {
        syncIfChanged(upstreams)
        let unhealthy = state.withLock { s -> [Int] in
            for u in upstreams { s.noteActive(u.id, u.active) }
            return upstreams.indices.filter { !s.isHealthy(upstreams[$0].id) }
        }
        for i in unhealthy { report.markUnhealthy(i) }
    }

    func stats() -> JSONValue {
        let s = state.withLock { $0 }
        let ups = s.upstreams.sorted { $0.key < $1.key }.map { (_, u) -> (String, JSONValue) in
            (u.name, [
                "healthy": .bool(u.healthy), "consecutive_successes": .int(u.consecutiveSuccesses),
                "consecutive_failures": .int(u.consecutiveFailures), "active": .int(u.active), "total": .int(u.total),
                "picks": .int(u.picks), "failures": .int(u.failures),
                "last_error": u.lastError.map { .string($0) } ?? .null,
                "last_error_at_unix_seconds": u.lastError == nil ? .null : .number(Double(u.lastErrorWallNanoseconds) / 1e9),
            ])
        }
        return ["strategy": .string(config.strategy.rawValue),
                "health_check_seconds": .number(Double(config.healthCheckInterval) / 1e9),
                "upstreams": .object(ups)]
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "balancer", version: "1.0.0", stages: [BalancerStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

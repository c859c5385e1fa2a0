import Locking
import StageKit
import Synchronization

/// A stage for the tests, scripted by its config, that records every hook call it receives.
/// It lets tests drive the chain's and the relay's behaviour through the real ABI:
///
/// - `"reject"`: a reason name (`"rate_limited"`, `"policy"`, ...) to reject every connection
/// - `"filter_out"`: upstream names to remove from the eligible set
/// - `"select"`: an upstream name to choose
/// - `"retry"`: after a failure, `"give_up"` or a duration to retry after
/// - `"grant"`: at most this many bytes per offer; `"retry_after"`: re-offer delay
/// - `"payload"`: receive payload slices and record their sum
/// - `"directions"`: `"both"` (default), `"up"`, `"down"`
/// - `"pending"`: `{"timeout": duration, "fallback": "accept" | "reject"}` leaves every open
///   verdict pending (ABI 1.3); control `{"op": "settle", "verdict": "accept" | "reject"}`
///   posts it for every connection still waiting
final class ScriptStage: OpenHook, UpstreamFilterHook, UpstreamSelectHook, UpstreamResultHook, DataHook,
    CloseHook, StatsHook, ControlHook
{
    static let typeName = "script"
    static let summary = "test stage: scripted verdicts, records hook calls"
    static let wantsPayload = true

    let reject: StageReason?
    let filterOut: Set<String>
    let select: String?
    let retry: RetryAdvice
    let grant: UInt64?
    let retryAfter: UInt64
    let payload: Bool
    let directions: DataDirections
    /// `pending`: the stage's own timeout and the fallback the host applies after it.
    let pending: (timeout: UInt64, fallback: OpenVerdict)?
    let host: StageHost
    /// Connections whose verdict is still to be posted.
    private let waiting = Locked<[UInt64]>([])
    private let log = Locked<[String]>([])
    private let payloadSum = Atomic<UInt64>(0)
    /// Typed per-connection state: found as its own type, refused as another.
    private let stateFound = Atomic<UInt64>(0)
    private let wrongTypeRefused = Atomic<UInt64>(0)

    final class ConnectionMark {}
    final class OtherMark {}

    init(setup: StageSetup) throws {
        let c = try setup.configObject()
        let reasons: [String: StageReason] = ["rate_limited": .rateLimited, "circuit_open": .circuitOpen,
                                              "policy": .policy, "limit_reached": .limitReached]
        reject = try c.string("reject").map { name throws(ConfigError) -> StageReason in
            guard let r = reasons[name] else { throw ConfigError(path: "reject", "unknown reason \"\(name)\"") }
            return r
        }
        filterOut = Set(try (c.array("filter_out") ?? []).compactMap { if case .string(let s) = $0.value { s } else { nil } })
        select = try c.string("select")
        let retryText = try c.string("retry")
        if retryText == "give_up" {
            retry = .giveUp
        } else if let retryText {
            guard let ns = Units.parseDuration(retryText) else { throw ConfigError(path: "retry", "expected give_up or a duration") }
            retry = .retry(afterNanoseconds: ns)
        } else {
            retry = .noOpinion
        }
        grant = try c.size("grant")
        retryAfter = try c.duration("retry_after", default: 0)
        payload = try c.bool("payload", default: false)
        let d = try c.choice("directions", ["both", "up", "down"], default: "both")
        directions = d == "up" ? .up : d == "down" ? .down : .both
        if let p = try c.object("pending") {
            let timeout = try p.duration("timeout", default: 0)
            let accept = try p.choice("fallback", ["accept", "reject"], default: "reject") == "accept"
            try p.finish()
            pending = (timeout, accept ? .accept : .reject(.policy, "scripted fallback"))
        } else {
            pending = nil
        }
        host = setup.host
        try c.finish()
    }

    var disabledEvents: StageEventSet {
        var off: StageEventSet = []
        if grant == nil && !payload { off.formUnion(.data) }
        if !payload { off.insert(StageEventSet(rawValue: 1 << 6)) }
        if !directions.contains(.up) { off.insert(.dataUp) }
        if !directions.contains(.down) { off.insert(.dataDown) }
        return off
    }

    private func record(_ entry: String) {
        log.withLock { if $0.count < 10_000 { $0.append(entry) } }
    }

    func open(_ c: StageConnection) -> OpenVerdict {
        record("open \(c.peerIP)")
        if let reject { return .reject(reject, "scripted rejection of \(c.peerIP)") }
        c.setState(ConnectionMark())
        if let pending {
            waiting.withLock { $0.append(c.id) }
            return .pending(timeoutNanoseconds: pending.timeout, fallback: pending.fallback)
        }
        return .accept
    }

    func filterUpstreams(_ c: StageConnection, _ upstreams: UpstreamList, eligible: inout EligibleUpstreams) {
        for (i, u) in upstreams.enumerated() where filterOut.contains(u.name) { eligible.remove(i) }
        record("filter \(eligible.indexes.map(String.init).joined(separator: ","))")
    }

    func selectUpstream(_ c: StageConnection, _ upstreams: UpstreamList, eligible: EligibleUpstreams) -> UpstreamSelection {
        guard let select, let i = upstreams.firstIndex(where: { $0.name == select }) else { return .noOpinion }
        record("select \(i)")
        return .chosen(i)
    }

    func upstreamResult(_ c: StageConnection, _ r: ConnectResult) -> RetryAdvice {
        record("result \(r.outcome) attempt=\(r.attempt) upstream=\(r.upstreamIndex) untried=\(r.remainingUntried)" + (r.pooled ? " pooled" : ""))
        return r.succeeded ? .noOpinion : retry
    }

    func data(_ c: StageConnection, _ offer: DataOffer) -> DataDecision {
        record("data \(offer.direction == .up ? "up" : "down") offset=\(offer.offset) avail=\(offer.available) eof=\(offer.endOfStream) reoffer=\(offer.isReoffer)")
        if payload {
            let sum = offer.withPayload { views in views.reduce(UInt64(0)) { acc, v in v.reduce(acc) { $0 &+ UInt64($1) } } }
            payloadSum.wrappingAdd(sum, ordering: .relaxed)
        }
        guard let grant, offer.available > grant else { return .passAll }
        return .pass(grant, retryAfterNanoseconds: retryAfter)
    }

    func close(_ c: StageConnection, _ s: CloseSummary) {
        if c.state(as: ConnectionMark.self) != nil { stateFound.wrappingAdd(1, ordering: .relaxed) }
        if c.state(as: OtherMark.self) == nil, c.withState(as: OtherMark.self, { _ in true }) == nil {
            wrongTypeRefused.wrappingAdd(1, ordering: .relaxed)
        }
        record("close \(s.cause) up=\(s.bytesUp) down=\(s.bytesDown) attempts=\(s.attempts) rejected_by=\(s.rejectedByName) reason=\(s.reasonCode)"
               + (s.closedWhilePending ? " while_pending" : ""))
    }

    func stats() -> JSONValue {
        ["events": .array(log.withLock { $0 }.map { .string($0) }), "payload_sum": .int(payloadSum.load(ordering: .relaxed)),
         "state_found": .int(stateFound.load(ordering: .relaxed)), "wrong_type_refused": .int(wrongTypeRefused.load(ordering: .relaxed))]
    }

    func control(_ command: JSONValue) -> ControlAnswer {
        if command["op"] == "settle" {
            let verdict: OpenVerdict = command["verdict"] == "accept" ? .accept : .reject(.policy, "scripted verdict")
            let ids = waiting.withLock { list -> [UInt64] in
                defer { list.removeAll() }
                return list
            }
            let posted = ids.filter { host.postVerdict($0, verdict) }.count
            return .ok(["posted": .int(UInt64(posted))])
        }
        guard command["op"] == "clear" else { return .badCommand("unknown op") }
        log.withLock { $0.removeAll() }
        return .ok(["cleared": true])
    }
}

@_cdecl("sss_stage_entry")
public func sssStageEntry(_ host: StageEntryHost, _ module: StageEntryModule,
                          _ error: StageEntryError, _ capacity: UInt64) -> Int32 {
    StageModule.export(name: "scriptstage", version: "1.0.0", stages: [ScriptStage.self],
                       host: host, module: module, error: error, capacity: capacity)
}

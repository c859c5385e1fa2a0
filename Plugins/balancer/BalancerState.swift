/// The balancer's view of each upstream, by stable id (positions change when upstreams are
/// added or removed at run time). Pure logic: the stage guards it with one short lock.
struct BalancerState: Sendable {
    struct Upstream: Sendable {
        var name: String
        var address: String
        var healthy = true
        var consecutiveSuccesses = 0
        var consecutiveFailures = 0
        /// The host's count of open connections, as of its last status query.
        var active: UInt64 = 0
        var total: UInt64 = 0
        var picks: UInt64 = 0
        var failures: UInt64 = 0
        var lastError: String?
        var lastErrorWallNanoseconds: UInt64 = 0
        /// Smooth weighted round robin's running weight.
        var currentWeight: Int64 = 0
    }

    let healthyThreshold: Int
    let unhealthyThreshold: Int
    private(set) var upstreams: [UInt64: Upstream] = [:]
    /// Round-robin cursor: the position after the last pick.
    private var cursor = 0

    init(healthyThreshold: Int, unhealthyThreshold: Int) {
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }

    /// Makes sure every listed upstream has state (new ones start healthy); drops state of
    /// upstreams no longer listed.
    mutating func sync(_ list: [(id: UInt64, name: String, address: String)]) {
        var next: [UInt64: Upstream] = [:]
        for u in list { next[u.id] = upstreams[u.id] ?? Upstream(name: u.name, address: u.address) }
        upstreams = next
    }

    func isHealthy(_ id: UInt64) -> Bool { upstreams[id]?.healthy ?? true }

    /// Records a health observation (active check or real connect). Returns a transition
    /// ("unhealthy" / "healthy") when the state changed.
    mutating func observe(_ id: UInt64, success: Bool, error: String? = nil, wall: UInt64 = 0) -> String? {
        guard var u = upstreams[id] else { return nil }
        var transition: String?
        if success {
            u.consecutiveSuccesses += 1
            u.consecutiveFailures = 0
            if !u.healthy && u.consecutiveSuccesses >= healthyThreshold {
                u.healthy = true
                transition = "healthy"
            }
        } else {
            u.consecutiveFailures += 1
            u.consecutiveSuccesses = 0
            u.lastError = error
            u.lastErrorWallNanoseconds = wall
            if u.healthy && u.consecutiveFailures >= unhealthyThreshold {
                u.healthy = false
                transition = "unhealthy"
            }
        }
        upstreams[id] = u
        return transition
    }

    /// One candidate: position in the current set, id, weight.
    struct Candidate { let index: Int; let id: UInt64; let weight: UInt32; let active: UInt64 }

    /// Picks among `candidates` (eligible, healthy, in set order; `count` = size of the set).
    mutating func pick(_ strategy: BalancerConfig.Strategy, from candidates: [Candidate], setSize: Int) -> Int? {
        guard !candidates.isEmpty else { return nil }
        let chosen: Candidate?
        switch strategy {
        case .roundRobin:
            chosen = nextFromCursor(candidates, setSize: setSize)
        case .leastConnections:
            let fewest = candidates.map(\.active).min()!
            let tied = candidates.filter { $0.active == fewest }
            chosen = nextFromCursor(tied, setSize: setSize)
        case .weightedRoundRobin:
            chosen = smoothWeighted(candidates)
        }
        guard let chosen else { return nil }
        upstreams[chosen.id]?.picks += 1
        return chosen.index
    }

    /// The first candidate at or after the cursor (wrapping); moves the cursor past it.
    private mutating func nextFromCursor(_ candidates: [Candidate], setSize: Int) -> Candidate? {
        let start = setSize == 0 ? 0 : cursor % setSize
        let chosen = candidates.first { $0.index >= start } ?? candidates.first
        if let chosen { cursor = chosen.index + 1 }
        return chosen
    }

    /// nginx's smooth weighted round robin: every candidate gains its weight, the largest wins
    /// and pays back the total. Weights 5,1,1 give a a b a c a a. Weight 0 is never chosen.
    private mutating func smoothWeighted(_ candidates: [Candidate]) -> Candidate? {
        let weighted = candidates.filter { $0.weight > 0 }
        guard !weighted.isEmpty else { return nil }
        var total: Int64 = 0
        var best: Candidate?
        var bestWeight = Int64.min
        for c in weighted {
            let w = Int64(c.weight)
            upstreams[c.id]?.currentWeight += w
            total += w
            let current = upstreams[c.id]?.currentWeight ?? 0
            if current > bestWeight {
                bestWeight = current
                best = c
            }
        }
        if let best { upstreams[best.id]?.currentWeight -= total }
        return best
    }

    mutating func connected(_ id: UInt64) {
        upstreams[id]?.total += 1
    }

    /// Records the host's live open-connection count of an upstream (for the stats).
    mutating func noteActive(_ id: UInt64, _ active: UInt64) {
        upstreams[id]?.active = active
    }

    mutating func failed(_ id: UInt64) {
        upstreams[id]?.failures += 1
    }
}

/// What one event loop's connections added to the tracker's figures. Each loop writes its own
/// shard (an uncontended lock); stats merge them.
struct TrackerShard: Sendable {
    var accepted: UInt64 = 0
    var rejectedByReason: [String: UInt64] = [:]
    var rejectedByStage: [String: UInt64] = [:]
    var failedConnects: UInt64 = 0
    var bytesUp: UInt64 = 0
    var bytesDown: UInt64 = 0
    var durations = LogHistogram()
    var connectLatencies = LogHistogram()
    var upstreamActive: [UInt64: Int64] = [:]
    var upstreamTotal: [UInt64: UInt64] = [:]
    /// Connections served by the host's warm pool (ABI 1.2 `pooled` results), per upstream.
    var upstreamPooled: [UInt64: UInt64] = [:]
    var clients = TopCounter(capacity: 1024)
    /// Accepts per second: a ring of the last 60 seconds (index = second % 60).
    var perSecond = [UInt64](repeating: 0, count: 60)
    var perSecondStamp = [UInt64](repeating: 0, count: 60)

    mutating func countAccept(atSecond second: UInt64) {
        let i = Int(second % 60)
        if perSecondStamp[i] != second {
            perSecondStamp[i] = second
            perSecond[i] = 0
        }
        perSecond[i] += 1
        accepted += 1
    }

    /// Accepts in the `window` seconds before `second` (the current second excluded: it is not
    /// over yet).
    func accepts(lastSeconds window: UInt64, before second: UInt64) -> UInt64 {
        var total: UInt64 = 0
        for s in (second &- window)..<second where second >= window {
            let i = Int(s % 60)
            if perSecondStamp[i] == s { total += perSecond[i] }
        }
        return total
    }

    /// Zeroes totals and histograms; keeps what is live (per-upstream active).
    mutating func resetTotals() {
        let active = upstreamActive
        self = TrackerShard()
        upstreamActive = active
    }
}

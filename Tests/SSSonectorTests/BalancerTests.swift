import ConfigValues
import StageABI
import Testing
@testable import SSSonectorCore

/// `balancer` through the real ABI with a manual clock.
@Suite(.serialized) struct BalancerTests {
    /// `n` connections, each closed right after its upstream is chosen; their upstream names.
    func picks(_ h: ChainHarness, _ n: Int) -> [String] {
        (0..<n).map { _ in
            let (c, name) = h.attempt()
            h.finish(c)
            return name ?? "-"
        }
    }

    @Test func roundRobinStartsAtTheFirstAndSkipsIneligible() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"strategy": "round_robin"}"#)])
        #expect(picks(h, 7) == ["a", "b", "c", "a", "b", "c", "a"])
        let f = try ChainHarness(stages: [("scriptstage", #"{"filter_out": ["b"]}"#), ("balancer", "{}")])
        #expect(picks(f, 4) == ["a", "c", "a", "c"])
    }

    @Test func leastConnectionsPrefersTheIdlestAndBreaksTiesRoundRobin() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"strategy": "least_connections"}"#)])
        let (a, first) = h.attempt()
        #expect(first == "a")
        // a has one open connection: b and c tie, taken in turn.
        let (b, second) = h.attempt()
        let (c, third) = h.attempt()
        #expect([second, third] == ["b", "c"])
        h.finish(b)
        let (d, fourth) = h.attempt()
        #expect(fourth == "b")
        // The stats show the host's live counts, as of the status query before them.
        _ = h.chain.upstreamStatus(of: h.table.current, now: h.now)
        #expect(h.stats(0)["upstreams"]?["a"]?["active"] == 1 && h.stats(0)["upstreams"]?["b"]?["active"] == 1)
        for open in [a, c, d] { h.finish(open) }
    }

    @Test func smoothWeightedRoundRobinInterleaves() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"strategy": "weighted_round_robin"}"#)], weights: [5, 1, 1])
        #expect(picks(h, 7) == ["a", "a", "b", "a", "c", "a", "a"])
        let drained = try ChainHarness(stages: [("balancer", #"{"strategy": "weighted_round_robin"}"#)], weights: [1, 0, 2])
        #expect(!picks(drained, 9).contains("b"))  // weight 0 drains
        #expect(throws: PluginError.self) {
            _ = try ChainHarness(stages: [("balancer", #"{"strategy": "weighted_round_robin"}"#)], weights: [0, 0, 0])
        }
    }

    @Test func keepsStateByIDWhenUpstreamsAreAddedAndRemoved() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"strategy": "round_robin"}"#)])
        #expect(picks(h, 2) == ["a", "b"])
        h.table.add(name: "d", address: "127.0.0.1:9100", weight: 1)
        #expect(picks(h, 3) == ["c", "d", "a"])
        h.table.drain(name: "a")
        #expect(picks(h, 3) == ["b", "c", "d"])
        let stats = h.stats(0)["upstreams"]
        #expect(stats?["a"]?["picks"] == 2)
        #expect(stats?["d"]?["picks"] == 2)
    }

    @Test func passiveFailuresMarkAnUpstreamUnhealthyAfterTheThreshold() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"unhealthy_threshold": 2, "health_check": "0s"}"#)])
        let snapshot = h.table.current
        for attempt in 1...2 {
            let c = h.connection()
            _ = c.open(now: h.now)
            _ = c.report(outcome: SSS_CONNECT_REFUSED, upstream: 0, in: snapshot, attempt: attempt, osErrno: 111,
                         latency: 10, remainingUntried: 2, now: h.now)
            h.finish(c, cause: SSS_CLOSE_CONNECT_FAILED)
        }
        #expect(h.stats(0)["upstreams"]?["a"]?["healthy"] == false)
        #expect(h.stats(0)["upstreams"]?["a"]?["last_error"] == "connect refused")
        // The host hears it through the ABI (on_upstream_status), not from the stats JSON.
        #expect(h.chain.upstreamStatus(of: snapshot, now: h.now) == [UInt8(SSS_STATUS_UNHEALTHY), 0, 0])
        #expect(!picks(h, 6).contains("a"))
    }

    @Test func failoverRetriesUntriedAtOnceWaitsOnlyWhenAllWereTriedAndGivesUp() throws {
        let h = try ChainHarness(stages: [("balancer", #"{"max_retries": 2, "retry_timeout": "750ms", "unhealthy_threshold": 99}"#)])
        let c = h.connection()
        _ = c.open(now: h.now)
        let s = h.table.current
        var d = c.report(outcome: SSS_CONNECT_REFUSED, upstream: 0, in: s, attempt: 1, osErrno: 111, latency: 1, remainingUntried: 2, now: h.now)
        #expect(d.action == SSS_RETRY_AFTER && d.retry_after_ns == 0)
        d = c.report(outcome: SSS_CONNECT_REFUSED, upstream: 1, in: s, attempt: 2, osErrno: 111, latency: 1, remainingUntried: 0, now: h.now)
        #expect(d.action == SSS_RETRY_AFTER && d.retry_after_ns == 750_000_000)
        d = c.report(outcome: SSS_CONNECT_REFUSED, upstream: 2, in: s, attempt: 3, osErrno: 111, latency: 1, remainingUntried: 1, now: h.now)
        #expect(d.action == SSS_RETRY_GIVE_UP)  // no wait after the last failure
        h.finish(c, cause: SSS_CLOSE_CONNECT_FAILED)
    }
}

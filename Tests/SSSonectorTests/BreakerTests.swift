import ConfigValues
import StageABI
import Testing
@testable import SSSonectorCore

/// `breaker` through the real ABI with a manual clock; `scriptstage` after it records which
/// upstreams stay eligible.
@Suite(.serialized) struct BreakerTests {
    let config = #"{"max_failures": 3, "failure_window": "10s", "reset_timeout": "5s", "half_open_max_calls": 2}"#

    func fail(_ h: ChainHarness, upstream: Int = 0) {
        let c = h.connection()
        _ = c.open(now: h.now)
        _ = c.choose(from: h.table.current, tried: [], now: h.now)
        _ = c.report(outcome: SSS_CONNECT_REFUSED, upstream: upstream, in: h.table.current, attempt: 1, osErrno: 111,
                     latency: 1, remainingUntried: 0, now: h.now)
        h.finish(c, cause: SSS_CLOSE_CONNECT_FAILED)
    }

    func state(_ h: ChainHarness, _ name: String = "a") -> JSONValue? { h.stats(0)["upstreams"]?[name]?["state"] }

    @Test func opensAfterMaxFailuresWithinTheWindowOnly() throws {
        let h = try ChainHarness(stages: [("breaker", config)], upstreams: ["a", "b"])
        fail(h); fail(h)
        h.clock.advance(milliseconds: 10_001)  // the first two fall out of the window
        fail(h)
        #expect(state(h) == "closed")
        #expect(h.stats(0)["upstreams"]?["a"]?["failures_in_window"] == 1)
        fail(h); fail(h)
        #expect(state(h) == "open")
        #expect(h.stats(0)["upstreams"]?["a"]?["transitions"] == ["closed_to_open": 1])
    }

    @Test func openCircuitsLeaveTheEligibleSetAndAllOpenRejectsAtOnce() throws {
        let h = try ChainHarness(stages: [("breaker", config), ("scriptstage", "{}")], upstreams: ["a", "b"])
        for _ in 0..<3 { fail(h, upstream: 0) }
        let c = h.connection()
        _ = c.open(now: h.now)
        #expect(c.choose(from: h.table.current, tried: [], now: h.now) == .upstream(index: 1))
        #expect(h.events(1).last == "filter 1")
        h.finish(c)
        for _ in 0..<3 { fail(h, upstream: 1) }
        let rejected = h.connection()
        #expect(rejected.open(now: h.now) == .rejected(stage: 0, reasonCode: SSS_REASON_CIRCUIT_OPEN,
                                                       text: "every upstream's circuit is open"))
        h.finish(rejected, cause: SSS_CLOSE_REJECTED)
    }

    @Test func halfOpenAdmitsLimitedTrialsAndClosesAfterExactlyThatManySuccesses() throws {
        let h = try ChainHarness(stages: [("breaker", config)], upstreams: ["a"])
        for _ in 0..<3 { fail(h) }
        h.clock.advance(milliseconds: 4999)
        let early = h.connection()
        #expect(early.open(now: h.now) != .accepted)  // still open
        h.finish(early, cause: SSS_CLOSE_REJECTED)
        h.clock.advance(milliseconds: 1)
        // Half-open: two trials at a time; a third connection finds nothing eligible.
        let t1 = h.connection(), t2 = h.connection(), t3 = h.connection()
        for t in [t1, t2, t3] { #expect(t.open(now: h.now) == .accepted) }
        #expect(t1.choose(from: h.table.current, tried: [], now: h.now) == .upstream(index: 0))
        #expect(t2.choose(from: h.table.current, tried: [], now: h.now) == .upstream(index: 0))
        #expect(t3.choose(from: h.table.current, tried: [], now: h.now) == .noUpstream)
        #expect(state(h) == "half_open")
        _ = t1.report(outcome: SSS_CONNECT_OK, upstream: 0, in: h.table.current, attempt: 1, osErrno: 0, latency: 1, remainingUntried: 0, now: h.now)
        #expect(state(h) == "half_open")  // one success of two
        _ = t2.report(outcome: SSS_CONNECT_OK, upstream: 0, in: h.table.current, attempt: 1, osErrno: 0, latency: 1, remainingUntried: 0, now: h.now)
        #expect(state(h) == "closed")
        for t in [t1, t2, t3] { h.finish(t) }
    }

    @Test func aTrialFailureOpensAgainWithAFreshTimer() throws {
        let h = try ChainHarness(stages: [("breaker", config)], upstreams: ["a"])
        for _ in 0..<3 { fail(h) }
        h.clock.advance(milliseconds: 5000)
        fail(h)  // the trial fails
        #expect(state(h) == "open")
        h.clock.advance(milliseconds: 4000)
        let c = h.connection()
        #expect(c.open(now: h.now) != .accepted)  // the timer restarted at the trial failure
        h.finish(c, cause: SSS_CLOSE_REJECTED)
        #expect(h.stats(0)["upstreams"]?["a"]?["transitions"] == ["closed_to_open": 1, "half_open_to_open": 1, "open_to_half_open": 1])
    }

    @Test func resetAndTripByControl() throws {
        let h = try ChainHarness(stages: [("breaker", config)], upstreams: ["a", "b"])
        #expect(h.control(0, #"{"op": "trip", "upstream": "b"}"#) == ["upstream": "b", "state": "open"])
        #expect(state(h, "b") == "open")
        // The host hears it through the ABI (on_upstream_status): b is paused, not unhealthy.
        #expect(h.chain.upstreamStatus(of: h.table.current, now: h.now) == [0, UInt8(SSS_STATUS_PAUSED)])
        #expect(h.control(0, #"{"op": "reset", "upstream": "b"}"#) == ["upstream": "b", "state": "closed"])
        #expect(h.chain.upstreamStatus(of: h.table.current, now: h.now) == [0, 0])
        #expect(h.control(0, #"{"op": "reset", "upstream": "zz"}"#)["error"] == #"upstream: no upstream named "zz""#)
    }
}

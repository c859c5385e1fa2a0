import ConfigValues
import Testing
@testable import SSSonectorCore

/// The warm pool's sizing, shrinking, backoff and expiry rules, driven with explicit times.
@Suite struct PoolDemandTests {
    let ms: UInt64 = 1_000_000
    let s: UInt64 = 1_000_000_000

    func settings(min: Int = 0, max: Int = 16, headroom: Double = 1.5) -> PoolSettings {
        var p = PoolSettings()
        p.enabled = true
        p.minIdle = min
        p.maxIdle = max
        p.headroom = headroom
        return p
    }

    @Test func theTargetIsTakeRateTimesSetupTimeTimesHeadroomClamped() {
        var d = PoolDemand()
        #expect(d.target(now: 0, settings(min: 2)) == 2)  // no demand: min_idle
        d.recordSetup(nanoseconds: 100 * ms)  // 100 ms to connect and handshake
        for i in 0..<2000 { d.recordTake(now: UInt64(i) * 5 * ms) }  // 200 takes per second for 10 s
        let rate = d.rate(at: 10 * s)
        #expect(rate > 195 && rate < 205)
        // m = 200/s × 0.1 s = 20 takes per refill: ceil(20 × 1.5 + 2√20) = 39, clamped to max_idle 16.
        #expect(d.target(now: 10 * s, settings()) == 16)
        let m = rate * 0.1
        #expect(d.target(now: 10 * s, settings(max: 64)) == Int((m * 1.5 + 2 * m.squareRoot()).rounded(.up)))
        #expect(d.target(now: 10 * s, settings(max: 64, headroom: 1)) == Int((m + 2 * m.squareRoot()).rounded(.up)))
        #expect((38...40).contains(d.target(now: 10 * s, settings(max: 64))))
    }

    @Test func theRateGrowsWithinASecondAndShrinksOverTen() {
        var d = PoolDemand()
        for i in 0..<100 { d.recordTake(now: UInt64(i) * 10 * ms) }  // a one-second surge of 100/s
        #expect(d.rate(at: 1 * s) > 60)  // the 1 s average has caught up
        // Five seconds later the 1 s average is gone; the 10 s one keeps a part.
        let later = d.rate(at: 6 * s)
        #expect(later > 5 && later < 7)
    }

    @Test func anyDemandKeepsOneWarmAndNoDemandFallsBackToMinIdle() {
        var d = PoolDemand()
        d.recordSetup(nanoseconds: 200_000)  // 0.2 ms on loopback
        d.recordTake(now: 0)
        #expect(d.target(now: 0, settings()) == 1)
        // Ten windows later the one take has decayed below half a take per window.
        #expect(d.target(now: 100 * s, settings()) == 0)
        #expect(d.target(now: 100 * s, settings(min: 3)) == 3)
    }

    @Test func theExcessShrinksByHalfPerIntervalNeverAllAtOnce() {
        var d = PoolDemand()
        // The first excess starts the interval; nothing closes yet.
        #expect(d.shrinkCount(idle: 16, target: 0, now: 0) == 0)
        #expect(d.shrinkCount(idle: 16, target: 0, now: 4 * s) == 0)
        #expect(d.shrinkCount(idle: 16, target: 0, now: 5 * s) == 8)
        #expect(d.shrinkCount(idle: 8, target: 0, now: 6 * s) == 0)
        #expect(d.shrinkCount(idle: 8, target: 0, now: 10 * s) == 4)
        #expect(d.shrinkCount(idle: 4, target: 1, now: 15 * s) == 2)  // half of 3, rounded up
        #expect(d.shrinkCount(idle: 1, target: 1, now: 20 * s) == 0)
        // Demand came back: a new excess waits a whole interval again.
        #expect(d.shrinkCount(idle: 5, target: 1, now: 21 * s) == 0)
        #expect(d.shrinkCount(idle: 5, target: 1, now: 26 * s) == 2)
    }

    @Test func refillsBackOffFrom100msDoublingTo30sAndASuccessResets() {
        var b = RefillBackoff()
        #expect(b.allows(now: 0))
        b.failed(now: 0)
        #expect(!b.allows(now: 99 * ms) && b.allows(now: 100 * ms))
        b.failed(now: 100 * ms)
        #expect(!b.allows(now: 299 * ms) && b.allows(now: 300 * ms))
        for _ in 0..<20 { b.failed(now: 1000 * s) }
        #expect(!b.allows(now: 1029 * s) && b.allows(now: 1030 * s))  // capped at 30 s
        b.succeeded()
        #expect(b.allows(now: 1000 * s) && b.failures == 0)
    }

    @Test func idleExpiryIsSpreadOverTheLastTenthOfMaxIdleTime() {
        let ready: UInt64 = 7 * s
        #expect(PoolDemand.expiry(readyAt: ready, maxIdleTime: 30 * s, jitter: 0) == ready + 30 * s)
        #expect(PoolDemand.expiry(readyAt: ready, maxIdleTime: 30 * s, jitter: 0.5) == ready + 30 * s - 1500 * ms)
        let latest = PoolDemand.expiry(readyAt: ready, maxIdleTime: 30 * s, jitter: 1)
        #expect(latest > ready + 27 * s && latest <= ready + 30 * s)
        #expect(PoolDemand.expiry(readyAt: .max - 1, maxIdleTime: 30 * s, jitter: 0) == .max)  // saturates
    }

    @Test func anUpstreamsIdleTimeoutIsLearnedFromItsClosesAndOneEarlyCloseDoesNotShrinkIt() {
        var l = LearnedIdleLimit()
        l.peerClosed(age: 5 * ms)  // one close (a restart?) teaches nothing yet
        #expect(l.limit == nil)
        l.peerClosed(age: 104 * ms)
        #expect(l.limit == 83_200_000)  // 80% of the oldest of the recent closes
        for _ in 0..<4 { l.peerClosed(age: 100 * ms) }
        #expect(l.limit == 80 * ms)  // the early outlier and the 104 ms close have aged out
    }

    @Test func poolSettingsComeFromThePipelineWithPerUpstreamOverrides() throws {
        let text = """
        {"version": 1, "name": "p", "listen": {"address": "127.0.0.1:0"},
         "upstreams": [{"name": "a", "address": "127.0.0.1:1"},
                       {"name": "b", "address": "127.0.0.1:2", "pool": {"max_idle": 4, "server_speaks_first": true}},
                       {"name": "c", "address": "127.0.0.1:3", "pool": {"enabled": false}}],
         "connection": {"pool": {"enabled": true, "min_idle": 1, "max_idle_time": "20s", "max_total": 50}}}
        """
        let config = try PipelineDecoder.decode(text: text, file: "p.json").get()
        #expect(config.upstreams[0].pool.enabled && config.upstreams[0].pool.minIdle == 1 && config.upstreams[0].pool.maxIdle == 16)
        #expect(config.upstreams[1].pool.maxIdle == 4 && config.upstreams[1].pool.minIdle == 1 && config.upstreams[1].pool.serverSpeaksFirst)
        #expect(config.upstreams[1].pool.effectiveMaxIdleTime == PoolSettings.greetingMaxIdleTime)  // greeting: capped short
        #expect(config.upstreams[0].pool.effectiveMaxIdleTime == 20 * s)
        #expect(!config.upstreams[2].pool.enabled)
        #expect(config.connection.pool.maxTotal == 50)
    }

    @Test(arguments: [
        (#""connection": {"pool": {"enabled": true, "min_idle": 5, "max_idle": 2}}"#, "p.json: connection.pool.min_idle: min_idle 5 is above max_idle 2"),
        (#""connection": {"pool": {"headroom": 0.5}}"#, "connection.pool.headroom: expected a number in 1...16, found 0.5"),
        (#""connection": {"pool": {"greeting_limit": "1MiB"}}"#, "connection.pool.greeting_limit: expected a size of 1...65536 bytes"),
        (#""connection": {"pool": {"max_idle_time": "1ms"}}"#, "connection.pool.max_idle_time: expected at least 10ms"),
        (#""connection": {"pool": {"enabled": "yes"}}"#, "connection.pool.enabled: expected true or false"),
    ])
    func badPoolSettingsAreRefusedWithTheirPath(_ connection: String, _ message: String) {
        let text = """
        {"version": 1, "name": "p", "listen": {"address": "127.0.0.1:0"},
         "upstreams": [{"name": "a", "address": "127.0.0.1:1"}], \(connection)}
        """
        guard case .failure(let errors) = PipelineDecoder.decode(text: text, file: "p.json") else {
            Issue.record("accepted: \(connection)")
            return
        }
        #expect(errors.description.contains(message), "\(errors.description)")
    }

    @Test func maxTotalIsPipelineWideOnly() {
        let text = """
        {"version": 1, "name": "p", "listen": {"address": "127.0.0.1:0"},
         "upstreams": [{"name": "a", "address": "127.0.0.1:1", "pool": {"max_total": 5}}]}
        """
        guard case .failure(let errors) = PipelineDecoder.decode(text: text, file: "p.json") else {
            Issue.record("accepted max_total per upstream")
            return
        }
        #expect(errors.description.contains("upstreams[0].pool.max_total: unknown key"))
    }
}

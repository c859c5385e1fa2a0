import ConfigValues
import StageABI
import Testing
@testable import SSSonectorCore

/// `ratelimit` through the real ABI with a manual clock.
@Suite(.serialized) struct RateLimitTests {
    func accepted(_ h: ChainHarness, from ip: String = "10.0.0.1", times: Int) -> Int {
        (0..<times).reduce(0) { count, _ in
            let c = h.connection(from: ip)
            let ok = c.open(now: h.now) == .accepted
            h.finish(c, cause: ok ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_REJECTED)
            return count + (ok ? 1 : 0)
        }
    }

    @Test func aBurstThenRejectionsThenRefill() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 2, "default_burst": 3}"#)])
        #expect(accepted(h, times: 5) == 3)  // a bucket starts full
        let c = h.connection(from: "10.0.0.1")
        #expect(c.open(now: h.now) == .rejected(stage: 0, reasonCode: SSS_REASON_RATE_LIMITED, text: "rate limit exceeded for 10.0.0.1"))
        h.finish(c, cause: SSS_CLOSE_REJECTED)
        h.clock.advance(milliseconds: 499)
        #expect(accepted(h, times: 1) == 0)
        h.clock.advance(milliseconds: 1)
        #expect(accepted(h, times: 2) == 1)  // 2 tokens per second: one per 500 ms
        #expect(accepted(h, from: "10.0.0.2", times: 4) == 3)  // another client has its own bucket
        #expect(h.stats(0)["allowed"] == 7)
        #expect(h.stats(0)["rejected"] == 6)
    }

    @Test func fractionalRates() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 0.5, "default_burst": 1}"#)])
        #expect(accepted(h, times: 2) == 1)
        h.clock.advance(milliseconds: 1999)
        #expect(accepted(h, times: 1) == 0)
        h.clock.advance(milliseconds: 1)
        #expect(accepted(h, times: 1) == 1)
    }

    @Test func setRateKeepsEarnedTokensAndNeverHandsOutAFreshBurst() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 1, "default_burst": 10}"#)])
        #expect(accepted(h, times: 8) == 8)
        var answer = h.control(0, #"{"op": "get", "key": "10.0.0.1"}"#)
        #expect(answer["tokens"] == 2)
        answer = h.control(0, #"{"op": "set_rate", "rate": 100, "burst": 50}"#)
        #expect(answer["rate"] == 100)
        #expect(h.control(0, #"{"op": "get", "key": "10.0.0.1"}"#)["tokens"] == 2)
        #expect(accepted(h, times: 3) == 2)
        h.clock.advance(milliseconds: 100)  // 100/s now: 10 more
        #expect(accepted(h, times: 12) == 10)
        // Lowering the burst clamps what was earned.
        h.clock.advance(milliseconds: 1000)
        _ = h.control(0, #"{"op": "set_rate", "key": "10.0.0.1", "rate": 1, "burst": 3}"#)
        #expect(h.control(0, #"{"op": "get", "key": "10.0.0.1"}"#) == ["key": "10.0.0.1", "rate": 1, "burst": 3, "tokens": 3])
        #expect(h.control(0, #"{"op": "set_rate", "rate": -1}"#)["error"] != nil)
        #expect(h.control(0, #"{"op": "explode"}"#)["error"] != nil)
    }

    @Test func cleanupDropsOnlyFullBuckets() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 1, "default_burst": 1, "cleanup_time": "1s"}"#)])
        #expect(accepted(h, from: "10.0.0.1", times: 1) == 1)
        h.clock.advance(milliseconds: 900)
        #expect(accepted(h, from: "10.0.0.2", times: 1) == 1)
        h.clock.advance(milliseconds: 200)  // .1 is full again, .2 is not
        h.chain.stages[0].tick(now: h.now)
        #expect(h.stats(0)["buckets"] == 1)
        #expect(accepted(h, from: "10.0.0.2", times: 1) == 0)  // .2 kept its state
        #expect(accepted(h, from: "10.0.0.1", times: 1) == 1)  // .1 starts full, as before
    }

    @Test func overridesByExactIPAndTheMostSpecificBlock() throws {
        let config = """
        {"default_rate": 0.001, "default_burst": 2,
         "overrides": {"10.0.0.0/8": {"rate": 0.001, "burst": 1}, "10.1.0.0/16": {"rate": 0.001, "burst": 3},
                       "10.1.2.3": {"rate": 0.001, "burst": 5}}}
        """
        let h = try ChainHarness(stages: [("ratelimit", config)])
        #expect(accepted(h, from: "10.9.9.9", times: 9) == 1)
        #expect(accepted(h, from: "10.1.9.9", times: 9) == 3)
        #expect(accepted(h, from: "10.1.2.3", times: 9) == 5)
        #expect(accepted(h, from: "192.168.0.1", times: 9) == 2)
    }

    @Test func globalKeySharesOneBucket() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 0.001, "default_burst": 3, "key": "global"}"#)])
        #expect(accepted(h, from: "10.0.0.1", times: 2) + accepted(h, from: "10.0.0.2", times: 2) == 3)
    }

    @Test func maxKeysBoundsMemoryWithAnOverflowBucket() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 0.001, "default_burst": 1, "max_keys": 16}"#)])
        var admitted = 0
        for i in 0..<200 { admitted += accepted(h, from: "10.0.\(i / 250).\(i % 250)", times: 1) }
        #expect(h.stats(0)["buckets"].map { if case .number(let n) = $0 { n <= 16 } else { false } } == true)
        #expect(admitted <= 17)  // 16 own buckets plus the one shared overflow bucket
    }

    @Test func bandwidthGrantsWhatTheBucketAllowsAndAsksForAReoffer() throws {
        let h = try ChainHarness(stages: [("ratelimit", #"{"default_rate": 100, "bandwidth": {"rate": 1000, "burst": 1000}}"#)])
        let c = h.connection()
        #expect(c.open(now: h.now) == .accepted)
        var g = c.offer(direction: SSS_DIR_UP, received: 3000, eof: false, buffered: 3000, now: h.now, reoffer: false)
        #expect(g.releasedUpTo == 1000)
        #expect(g.retryAfter == 1_000_000_000)  // the next 1000 bytes are earned in 1 s
        h.clock.advance(milliseconds: 400)
        g = c.offer(direction: SSS_DIR_UP, received: 3000, eof: false, buffered: 2000, now: h.now, reoffer: true)
        #expect(g.releasedUpTo == 1000)  // 400 bytes earned: below the minimum chunk, wait
        #expect(g.retryAfter == 600_000_000)
        h.clock.advance(milliseconds: 600)
        g = c.offer(direction: SSS_DIR_UP, received: 3000, eof: false, buffered: 2000, now: h.now, reoffer: true)
        #expect(g.releasedUpTo == 2000)
        // The other direction has its own bucket.
        g = c.offer(direction: SSS_DIR_DOWN, received: 500, eof: false, buffered: 500, now: h.now, reoffer: false)
        #expect(g.releasedUpTo == 500 && g.retryAfter == 0)
        h.finish(c)
    }

    @Test func configErrorsNameTheKey() {
        for (config, message) in [
            ("{}", "default_rate: required: tokens per second, > 0"),
            (#"{"default_rate": 0}"#, "default_rate: expected a rate > 0 (tokens per second), found 0"),
            (#"{"default_rate": 1, "key": "port"}"#, #"key: expected one of "client_ip", "global", "listener", found "port""#),
            (#"{"default_rate": 1, "overrides": {"10.0.0.0/99": {"rate": 1}}}"#, #"overrides["10.0.0.0/99"]: expected an IP address or CIDR block as the key"#),
            (#"{"default_rate": 1, "bandwidth": {"rate": "fast"}}"#, #"bandwidth.rate: expected a positive rate in bytes per second, or a string such as "1MiB/s", found "fast""#),
            (#"{"default_rate": 1, "shared": {}}"#, #"shared.redis: required: "host:port" or "unix:/path""#),
            (#"{"default_rate": 1, "shared": {"redis": "localhost"}}"#, #"shared.redis: expected "host:port" or "unix:/path", got "localhost""#),
            (#"{"default_rate": 1, "shared": {"redis": "unix:/r.sock", "on_error": "panic"}}"#, #"shared.on_error: expected one of "local", "allow", "deny", found "panic""#),
            (#"{"default_rate": 1, "shared": {"redis": "unix:/r.sock", "timeout": "1h"}}"#, nil),
            (#"{"default_rate": 1, "shared": {"redis": "unix:/r.sock", "db": 3}}"#, nil),
        ] as [(String, String?)] {
            let error = #expect(throws: PluginError.self) { _ = try ChainHarness(stages: [("ratelimit", config)]) }
            if let message { #expect(error?.message == message) } else { #expect(error?.message.hasPrefix("shared.") == true, "\(String(describing: error))") }
        }
    }
}

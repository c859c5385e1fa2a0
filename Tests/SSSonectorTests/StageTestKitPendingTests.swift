import StageTestKit
import Testing

/// The test kit drives pending open verdicts (ABI 1.3) on its manual clock: a verdict the stage
/// posts (from any thread) is applied with `settle`, and the fallback with `expireIfDue`
/// once the clock reaches the deadline.
@Suite struct StageTestKitPendingTests {
    @Test func aPostedVerdictSettlesAndTheFallbackWaitsForTheClock() throws {
        let stage = try StageUnderTest(library: StageUnderTest.builtLibrary("scriptstage"),
                                       config: #"{"pending": {"timeout": "50ms", "fallback": "accept"}}"#)
        let first = stage.connect(from: "10.0.0.1")
        #expect(first.open() == .pending(timeoutNanoseconds: 50_000_000))
        #expect(first.settle() == nil)  // nothing posted yet
        #expect(stage.control(#"{"op": "settle", "verdict": "reject"}"#).answer?["posted"] == 1)
        #expect(first.settle() == .rejected(reason: "policy", text: "scripted verdict"))

        let second = stage.connect(from: "10.0.0.2")
        #expect(second.open() == .pending(timeoutNanoseconds: 50_000_000))
        stage.clock.advance(milliseconds: 49)
        #expect(second.expireIfDue() == nil)
        stage.clock.advance(milliseconds: 1)
        #expect(second.expireIfDue() == .accepted)
    }

    @Test func ratelimitWithASharedBudgetPendsOnRedisAndFallsBackToItsOwnBucket() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        let stage = try StageUnderTest(library: StageUnderTest.builtLibrary("ratelimit"), config: #"""
            {"default_rate": 0.001, "default_burst": 2, "shared": {"redis": "\#(redis.endpoint)", "timeout": "2s"}}
            """#)
        // Redis answers from its own thread: the verdict is posted, the kit applies it. The
        // link's timeout runs on real time, so it is long enough for a loaded machine (with
        // 10 ms the first admission, which also connects and loads the script, could miss it).
        var results: [TestConnection.OpenResult?] = []
        for _ in 0..<3 {
            let c = stage.connect(from: "10.0.0.1")
            guard c.open() == .pending(timeoutNanoseconds: 2_000_000_000) else {
                Issue.record("not pending")
                continue
            }
            results.append(c.settle(waitingUpTo: 20))
        }
        #expect(results == [.accepted, .accepted, .rejected(reason: "rate_limited", text: "shared rate limit exceeded for 10.0.0.1")])
        // The denied key is now denied locally, without asking Redis.
        #expect(stage.connect(from: "10.0.0.1").open() == .rejected(reason: "rate_limited", text: "shared rate limit exceeded for 10.0.0.1"))
        // A Redis that does not answer: the stage's timeout applies its fallback, this host's bucket.
        redis.cli("CLIENT", "PAUSE", "60000", "WRITE")
        defer { redis.cli("CLIENT", "UNPAUSE") }
        let waiting = stage.connect(from: "10.0.0.9")
        #expect(waiting.open() == .pending(timeoutNanoseconds: 2_000_000_000))
        stage.clock.advance(milliseconds: 2000)
        #expect(waiting.expireIfDue() == .accepted)
        #expect(stage.stats()?["shared"]?["requests"] == 4)
    }
}

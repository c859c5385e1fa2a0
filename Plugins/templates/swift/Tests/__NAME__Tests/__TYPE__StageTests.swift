import StageTestKit
import Testing

/// The stage through the host's real loader and chain, on a manual clock.
@Suite struct __TYPE__StageTests {
    func stage(_ config: String = #"{"bytes_per_second": 1000}"#) throws -> StageUnderTest {
        try StageUnderTest(library: StageUnderTest.builtLibrary("__NAME__"), config: config)
    }

    @Test func aBurstPassesThenTheRestWaitsForTheRate() throws {
        let s = try stage()
        let c = s.connect(from: "10.0.0.7")
        #expect(c.open() == .accepted)
        // One second's worth passes at once; the rest is held and offered again later.
        var grant = c.offer(.up, bytes: 1500)
        #expect(grant.passedUpTo == 1000)
        #expect(grant.retryAfterNanoseconds > 0)
        s.clock.advance(milliseconds: 500)
        grant = c.offer(.up, bytes: 0, reoffer: true)
        #expect(grant.passedUpTo == 1500)
        // The other direction has its own budget.
        #expect(c.offer(.down, bytes: 800).passedUpTo == 800)
        c.close()
        #expect(s.stats()?["connections"] == 1)
    }

    @Test func aBadConfigIsRefusedWithTheKey() throws {
        #expect(throws: (any Error).self) { _ = try stage(#"{"bytes_per_second": "fast"}"#) }
        #expect(throws: (any Error).self) { _ = try stage(#"{"speed": 5}"#) }
    }
}

import StageABI
import Testing
@testable import SSSonectorCore

/// The two example custom stages, through the real ABI with a manual clock.
@Suite(.serialized) struct ExampleStageTests {
    @Test func allowlistAcceptsClientsInsideItsBlocksAndRejectsOthersWithAReason() throws {
        let h = try ChainHarness(stages: [(try CPlugins.allowlist(), #"{"allow": ["10.0.0.0/8", "192.168.1.7"]}"#)])
        for ip in ["10.1.2.3", "10.255.0.1", "192.168.1.7"] {
            let c = h.connection(from: ip)
            #expect(c.open(now: h.now) == .accepted, "\(ip)")
            c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)
        }
        for ip in ["11.0.0.1", "192.168.1.8", "127.0.0.1"] {
            let c = h.connection(from: ip)
            #expect(c.open(now: h.now) == .rejected(stage: 0, reasonCode: SSS_REASON_POLICY,
                                                    text: "client \(ip) is not in the allow list"))
            c.close(.init(cause: SSS_CLOSE_REJECTED), now: h.now)
        }
        #expect(h.chain.stages[0].statsJSON() == #"{"blocks":2,"allowed":3,"rejected":3}"#)
    }

    @Test func allowlistRejectsBadConfigWithThePath() throws {
        for (config, message) in [
            (#"{"allow": ["10.0.0.0/33"]}"#, #"allow[0]: "10.0.0.0/33" is not an IPv4 or IPv6 address"#),
            (#"{"alow": []}"#, "alow: unknown key (expected one of: allow)"),
            ("{}", "allow: required array of CIDR blocks is missing"),
        ] {
            let error = try #require(throws: PluginError.self) { try ChainHarness(stages: [(try CPlugins.allowlist(), config)]) }
            #expect(error.kind == .configRejected)
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
    }

    @Test func bytecapLetsExactlyMaxBytesThroughThenCloses() throws {
        let h = try ChainHarness(stages: [("bytecap", #"{"max_bytes": 1000}"#)])
        let c = h.connection()
        #expect(c.open(now: h.now) == .accepted)
        var g = c.offer(direction: SSS_DIR_UP, received: 600, eof: false, buffered: 600, now: h.now, reoffer: false)
        #expect(g.releasedUpTo == 600)
        // Both directions count against the cap: 400 more may pass.
        g = c.offer(direction: SSS_DIR_DOWN, received: 500, eof: false, buffered: 500, now: h.now, reoffer: false)
        #expect(g.releasedUpTo == 400 && g.closeReason == nil)
        g = c.offer(direction: SSS_DIR_DOWN, received: 500, eof: false, buffered: 100, now: h.now, reoffer: false)
        #expect(g.closeReason == SSS_REASON_LIMIT_REACHED)
        c.close(.init(cause: SSS_CLOSE_STAGE_CLOSED), now: h.now)
        #expect(h.chain.stages[0].statsJSON()?.contains(#""closed_by_bytes":1"#) == true)
    }

    @Test func bytecapClosesConnectionsOlderThanMaxDurationOnTick() throws {
        let h = try ChainHarness(stages: [("bytecap", #"{"max_duration": "2s"}"#)])
        let stage = h.chain.stages[0]
        #expect(stage.tickIntervalMilliseconds == 100)
        #expect(!stage.events.contains(.dataUp))  // no byte cap: no per-chunk calls
        let old = h.connection()
        _ = old.open(now: h.now)
        h.clock.advance(milliseconds: 1500)
        let young = h.connection()
        _ = young.open(now: h.now)
        stage.tick(now: h.now)
        #expect(h.poster.closes.withLock { $0.isEmpty })
        h.clock.advance(milliseconds: 600)
        stage.tick(now: h.now)
        #expect(h.poster.closes.withLock { $0.map(\.0) } == [old.id])
        #expect(h.poster.closes.withLock { $0.map(\.1) } == [SSS_REASON_LIMIT_REACHED])
        old.close(.init(cause: SSS_CLOSE_STAGE_CLOSED), now: h.now)
        young.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)
    }

    @Test func bytecapRejectsConfigWithPaths() {
        for (config, message) in [
            (#"{"max_bytes": "lots"}"#, #"max_bytes: expected a size in bytes, or a string such as "64KiB", found "lots""#),
            (#"{"max_duration": 5}"#, #"max_duration: expected a duration with a unit such as "250ms", "30s", "5m", found 5"#),
            (#"{"max_bytes": 10, "direction": "sideways"}"#, #"direction: expected one of "both", "up", "down", found "sideways""#),
            (#"{"max_bytes": 10, "extra": 1}"#, "extra: unknown key (expected one of: max_bytes, max_duration, direction)"),
        ] {
            #expect(throws: PluginError(.configRejected, library: TestEnvironment.builtPlugin("bytecap"), message)) {
                _ = try ChainHarness(stages: [("bytecap", config)])
            }
        }
    }
}

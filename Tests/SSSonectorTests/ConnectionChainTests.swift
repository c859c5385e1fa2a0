import Glibc
import StageABI
import Testing
@testable import SSSonectorCore

/// The chain without sockets, through real stage libraries, with a manual clock.
@Suite(.serialized) struct ConnectionChainTests {
    @Test func aRejectStopsTheChainAndOnlyEnteredStagesAreClosed() throws {
        let h = try ChainHarness(stages: [("scriptstage", "{}"), ("scriptstage", #"{"reject": "rate_limited"}"#),
                                          ("scriptstage", "{}")])
        let c = h.connection(from: "10.1.2.3")
        let outcome = c.open(now: h.now)
        #expect(outcome == .rejected(stage: 1, reasonCode: SSS_REASON_RATE_LIMITED, text: "scripted rejection of 10.1.2.3"))
        var info = ConnectionChain.CloseInfo(cause: SSS_CLOSE_REJECTED)
        info.rejectedBy = 1
        info.reasonCode = SSS_REASON_RATE_LIMITED
        c.close(info, now: h.now)
        c.close(info, now: h.now)  // a second close does nothing
        #expect(h.events(0) == ["open 10.1.2.3", "close rejected up=0 down=0 attempts=0 rejected_by=s1 reason=1"])
        #expect(h.events(1) == ["open 10.1.2.3", "close rejected up=0 down=0 attempts=0 rejected_by=s1 reason=1"])
        #expect(h.events(2).isEmpty)
    }

    @Test func perConnectionStateIsTypedAndTheWrongTypeIsRefused() throws {
        let h = try ChainHarness(stages: [("scriptstage", "{}")])
        let c = h.connection()
        #expect(c.open(now: h.now) == .accepted)
        c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)
        #expect(h.stats(0)["state_found"] == 1)
        #expect(h.stats(0)["wrong_type_refused"] == 1)
    }

    @Test func filtersThenSelectsAndFallsBackToHostRoundRobin() throws {
        let h = try ChainHarness(stages: [("scriptstage", #"{"filter_out": ["a"]}"#), ("scriptstage", #"{"select": "c"}"#)])
        let c = h.connection()
        #expect(c.open(now: h.now) == .accepted)
        #expect(c.choose(from: h.table.current, tried: [], now: h.now) == .upstream(index: 2))
        #expect(h.events(0).last == "filter 1,2")
        c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)

        // No selecting stage: round robin over the eligible set (b, c), starting at the first.
        let rr = try ChainHarness(stages: [("scriptstage", #"{"filter_out": ["a"]}"#)])
        var picks: [Int] = []
        for _ in 0..<4 {
            let conn = rr.connection()
            _ = conn.open(now: rr.now)
            if case .upstream(let i) = conn.choose(from: rr.table.current, tried: [], now: rr.now) { picks.append(i) }
            conn.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: rr.now)
        }
        #expect(picks == [1, 2, 1, 2])
    }

    @Test func nothingEligibleIsNoUpstreamAndTriedUpstreamsAreSkippedWhileOthersRemain() throws {
        let h = try ChainHarness(stages: [("scriptstage", #"{"filter_out": ["a", "b", "c"]}"#)])
        let c = h.connection()
        _ = c.open(now: h.now)
        #expect(c.choose(from: h.table.current, tried: [], now: h.now) == .noUpstream)
        c.close(.init(cause: SSS_CLOSE_NO_UPSTREAM), now: h.now)

        let plain = try ChainHarness(stages: [])
        let snapshot = plain.table.current
        let conn = plain.connection()
        _ = conn.open(now: plain.now)
        let ids = snapshot.entries.map(\.id)
        #expect(conn.choose(from: snapshot, tried: [ids[0], ids[1]], now: plain.now) == .upstream(index: 2))
        // Everything tried: a new round may pick any.
        if case .upstream = conn.choose(from: snapshot, tried: Set(ids), now: plain.now) {} else {
            Issue.record("expected an upstream when every one was tried")
        }
        conn.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: plain.now)
    }

    @Test func everyAttemptReachesEveryStageAndTheFirstOpinionWins() throws {
        let h = try ChainHarness(stages: [("scriptstage", "{}"), ("scriptstage", #"{"retry": "250ms"}"#),
                                          ("scriptstage", #"{"retry": "give_up"}"#)])
        let c = h.connection()
        _ = c.open(now: h.now)
        let snapshot = h.table.current
        c.beginAttempt(upstream: 0, in: snapshot, attempt: 1)
        let d = c.report(outcome: SSS_CONNECT_REFUSED, upstream: 0, in: snapshot, attempt: 1, osErrno: ECONNREFUSED,
                         latency: 1000, remainingUntried: 2, now: h.now)
        #expect(d.action == SSS_RETRY_AFTER && d.retry_after_ns == 250_000_000)
        let ok = c.report(outcome: SSS_CONNECT_OK, upstream: 1, in: snapshot, attempt: 2, osErrno: 0, latency: 500,
                          remainingUntried: 1, now: h.now)
        #expect(ok.action == SSS_RETRY_NO_OPINION)
        for i in 0..<3 {
            #expect(h.events(i).contains("result refused attempt=1 upstream=0 untried=2"))
            #expect(h.events(i).contains("result connected attempt=2 upstream=1 untried=1"))
        }
        c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)
    }

    @Test func dataGrantsCountEachByteOnceEvenWhenALaterStageHoldsIt() throws {
        let h = try ChainHarness(stages: [("scriptstage", #"{"grant": 1000000, "directions": "up"}"#),
                                          ("scriptstage", #"{"grant": 100, "retry_after": "10ms", "directions": "up"}"#)])
        let c = h.connection()
        _ = c.open(now: h.now)
        #expect(c.inspectsUp && !c.inspectsDown)
        var g = c.offer(direction: SSS_DIR_UP, received: 250, eof: false, buffered: 250, now: h.now, reoffer: false)
        #expect(g == .init(releasedUpTo: 100, retryAfter: 10_000_000, closeReason: nil))
        g = c.offer(direction: SSS_DIR_UP, received: 250, eof: false, buffered: 150, now: h.now, reoffer: true)
        #expect(g.releasedUpTo == 200)
        g = c.offer(direction: SSS_DIR_UP, received: 260, eof: true, buffered: 60, now: h.now, reoffer: true)
        #expect(g.releasedUpTo == 260 && g.retryAfter == 0)
        // Stage 0 saw each byte once: 250 then 10 more (with EOF).
        #expect(h.events(0).filter { $0.hasPrefix("data") } == [
            "data up offset=0 avail=250 eof=false reoffer=false",
            "data up offset=250 avail=10 eof=true reoffer=true",
        ])
        #expect(h.events(1).filter { $0.hasPrefix("data") } == [
            "data up offset=0 avail=250 eof=false reoffer=false",
            "data up offset=100 avail=150 eof=false reoffer=true",
            "data up offset=200 avail=60 eof=true reoffer=true",
        ])
        c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: h.now)
    }

    @Test func retryPlannerFollowsTheDefaultPolicy() {
        var p = RetryPlanner(retryAttempts: 3, retryInterval: 1_000)
        let none = sss_retry_decision(struct_size: 16, action: SSS_RETRY_NO_OPINION, retry_after_ns: 0)
        p.attempting(upstreamID: 1)
        #expect(p.afterFailure(untried: 2, decision: none) == .tryNow)
        p.attempting(upstreamID: 2)
        #expect(p.afterFailure(untried: 1, decision: none) == .tryNow)
        p.attempting(upstreamID: 3)
        // Every upstream tried this round: a new round after the interval.
        #expect(p.afterFailure(untried: 0, decision: none) == .tryAfter(nanoseconds: 1_000))
        #expect(p.triedThisRound.isEmpty)
        p.attempting(upstreamID: 1)
        // The last allowed attempt failed: give up at once, no wait.
        #expect(p.afterFailure(untried: 2, decision: none) == .giveUp)
    }

    @Test func retryPlannerLetsItsRoundGoOnceConnected() {
        var p = RetryPlanner(retryAttempts: 3, retryInterval: 1_000)
        p.attempting(upstreamID: 1)
        p.attempting(upstreamID: 2)
        #expect(p.triedThisRound == [1, 2])
        p.connected()
        #expect(p.triedThisRound.isEmpty && p.attempts == 2)  // the attempts stay for the close record
    }

    @Test func retryPlannerObeysStages() {
        var p = RetryPlanner(retryAttempts: 0, retryInterval: 1_000)
        p.attempting(upstreamID: 1)
        let after = sss_retry_decision(struct_size: 16, action: SSS_RETRY_AFTER, retry_after_ns: 5)
        #expect(p.afterFailure(untried: 1, decision: after) == .tryAfter(nanoseconds: 5))
        let giveUp = sss_retry_decision(struct_size: 16, action: SSS_RETRY_GIVE_UP, retry_after_ns: 0)
        p.attempting(upstreamID: 2)
        #expect(p.afterFailure(untried: 3, decision: giveUp) == .giveUp)
    }

    @Test func peerIPTextIsFormattedFromTheAddressForBothFamilies() {
        let out = UnsafeMutablePointer<CChar>.allocate(capacity: ConnectionChain.ipTextCapacity)
        defer { out.deallocate() }
        var v6 = sss_addr()
        v6.family = UInt16(SSS_AF_INET6)
        withUnsafeMutableBytes(of: &v6.addr) { raw in
            for (i, b) in [0x20, 0x01, 0x0d, 0xb8].enumerated() { raw[i] = UInt8(b) }
            raw[15] = 1
        }
        #expect(ConnectionChain.formatIP(v6, into: out) == 11)
        #expect(String(cString: out) == "2001:db8::1")
        var v4 = sss_addr()
        v4.family = UInt16(SSS_AF_INET)
        withUnsafeMutableBytes(of: &v4.addr) { raw in for (i, b) in [192, 0, 2, 255].enumerated() { raw[i] = UInt8(b) } }
        #expect(ConnectionChain.formatIP(v4, into: out) == 11)
        #expect(String(cString: out) == "192.0.2.255")
        for octets in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 200, 7], [127, 99, 100, 9], [1, 10, 101, 250]] {
            withUnsafeMutableBytes(of: &v4.addr) { raw in for (i, b) in octets.enumerated() { raw[i] = UInt8(b) } }
            let expected = octets.map(String.init).joined(separator: ".")
            #expect(ConnectionChain.formatIP(v4, into: out) == expected.utf8.count)
            #expect(String(cString: out) == expected)
        }
        #expect(ConnectionChain.formatIP(sss_addr(), into: out) == 0)
        #expect(String(cString: out) == "")
    }
}

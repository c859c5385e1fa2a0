import ConfigValues
import Foundation
import StageABI
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// Asynchronous admission (ABI 1.3, docs/abi.md): an open hook answers pending and posts its
/// verdict later; the host waits without reading or connecting, bounded by the stage's timeout
/// and `connection.open_timeout`, and tells a stage whose connection closed meanwhile once.
@Suite struct AsyncAdmissionTests {
    // MARK: the chain, on a manual clock

    static let pendingAccept = #"{"pending": {"timeout": "50ms", "fallback": "accept"}}"#
    static let pendingReject = #"{"pending": {"timeout": "50ms", "fallback": "reject"}}"#

    @Test func aPostedAcceptGoesOnWithTheNextStage() throws {
        let h = try ChainHarness(stages: [("scriptstage", Self.pendingReject), ("scriptstage", "{}")])
        let c = h.connection()
        #expect(c.open(now: h.now) == .pending(stage: 0, timeout: 50_000_000))
        #expect(h.events(1).isEmpty)  // later stages wait too
        #expect(h.control(0, #"{"op": "settle", "verdict": "accept"}"#)["posted"] == 1)
        let posted = try #require(h.poster.verdicts.withLock { $0.first })
        #expect(posted.0 == c.id && posted.1.verdict == SSS_ACCEPT)
        #expect(c.settle(posted.1, now: h.now) == .accepted)
        #expect(h.events(1) == ["open 127.0.0.1"])
        // The wait is over: the same verdict again, or the timeout, settles nothing.
        #expect(c.settle(posted.1, now: h.now) == nil)
        #expect(c.settleWithFallback(now: h.now) == nil)
        h.finish(c)
        #expect(h.events(0).last?.hasSuffix("while_pending") == false)
    }

    @Test func aPostedRejectionNamesTheStageAndItsReason() throws {
        let h = try ChainHarness(stages: [("scriptstage", Self.pendingAccept)])
        let c = h.connection()
        _ = c.open(now: h.now)
        _ = h.control(0, #"{"op": "settle", "verdict": "reject"}"#)
        let posted = try #require(h.poster.verdicts.withLock { $0.first?.1 })
        #expect(c.settle(posted, now: h.now) == .rejected(stage: 0, reasonCode: SSS_REASON_POLICY, text: "scripted verdict"))
        h.finish(c, cause: SSS_CLOSE_REJECTED)
    }

    @Test func theFallbackAppliesWhenTheWaitTimesOut() throws {
        let accepting = try ChainHarness(stages: [("scriptstage", Self.pendingAccept), ("scriptstage", "{}")])
        let a = accepting.connection()
        _ = a.open(now: accepting.now)
        #expect(a.settleWithFallback(now: accepting.now) == .accepted)
        #expect(accepting.events(1) == ["open 127.0.0.1"])
        accepting.finish(a)

        let rejecting = try ChainHarness(stages: [("scriptstage", Self.pendingReject)])
        let r = rejecting.connection()
        _ = r.open(now: rejecting.now)
        #expect(r.settleWithFallback(now: rejecting.now) == .rejected(stage: 0, reasonCode: SSS_REASON_POLICY, text: "scripted fallback"))
        rejecting.finish(r, cause: SSS_CLOSE_REJECTED)
    }

    @Test func onlyTheStageWaitedForSettlesTheConnection() throws {
        let h = try ChainHarness(stages: [("scriptstage", "{}"), ("scriptstage", Self.pendingReject)])
        let c = h.connection()
        #expect(c.open(now: h.now) == .pending(stage: 1, timeout: 50_000_000))
        let other = PostedVerdict(stage: ObjectIdentifier(h.chain.stages[0].services), verdict: SSS_ACCEPT, reasonCode: 0, text: "")
        #expect(c.settle(other, now: h.now) == nil)
        #expect(c.pendingStage == 1)
        h.finish(c)
    }

    @Test func aConnectionClosedWhilePendingIsToldOnce() throws {
        let h = try ChainHarness(stages: [("scriptstage", Self.pendingAccept), ("scriptstage", "{}")])
        let c = h.connection()
        _ = c.open(now: h.now)
        h.finish(c, cause: SSS_CLOSE_CLIENT_RESET)
        let closes = h.events(0).filter { $0.hasPrefix("close") }
        #expect(closes.count == 1)
        #expect(closes.first?.hasSuffix("while_pending") == true)
        // The stage after the pending one was never entered: it hears nothing.
        #expect(h.events(1).isEmpty)
        _ = h.control(0, #"{"op": "settle", "verdict": "accept"}"#)
        let posted = try #require(h.poster.verdicts.withLock { $0.first?.1 })
        #expect(c.settle(posted, now: h.now) == nil)
    }

    // MARK: the host, end to end

    /// A host whose pipeline waits on a scriptstage's pending verdict.
    struct PendingHost {
        let host: HostProcess
        let port: Int
        let admin: Int

        init(upstream: Int, stage: String, connection: String = "{}") throws {
            let file = pipelineFile(upstreams: [("e", upstream)],
                                    stages: #"[{"name": "gate", "plugin": "scriptstage", "config": \#(stage)}]"#,
                                    connection: connection)
            host = try HostProcess(["run", "--admin", "127.0.0.1:0", file], pipelines: 2)
            port = try #require(host.port(of: "test"))
            admin = try #require(host.adminPort)
        }

        func figure(_ key: String) -> Int {
            (try? httpJSON("GET", port: admin, "/stats").json)?["pipelines"]?["test"]?["connections"]?[key]?.intValue ?? -1
        }

        func settle(_ verdict: String) -> Int {
            let answer = try? httpJSON("POST", port: admin, "/pipelines/test/stages/gate/control",
                                       body: #"{"op": "settle", "verdict": "\#(verdict)"}"#)
            return answer?.json["posted"]?.intValue ?? -1
        }

        func events() -> [String] {
            guard case .array(let items)? = (try? httpJSON("GET", port: admin, "/stats").json)?["pipelines"]?["test"]?["stages"]?["gate"]?["events"]
            else { return [] }
            return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
    }

    @Test func whilePendingTheHostReadsNothingAndConnectsNothingThenRelaysEveryByte() async throws {
        let echo = try await EchoUpstreams(count: 1)
        // No timeout of its own and an open timeout far away: only the posted verdict ends the wait.
        let h = try PendingHost(upstream: echo.ports[0], stage: #"{"pending": {"fallback": "reject"}}"#,
                                connection: #"{"open_timeout": "10m"}"#)
        defer { h.host.stop() }
        let client = try BlockingTCPClient(host: "127.0.0.1", port: h.port, timeoutSeconds: 10)
        let data = pattern(100_000)
        try client.send(data)
        #expect(eventually { h.figure("pending") == 1 })
        #expect(h.figure("connects") == 0)
        #expect(h.settle("accept") == 1)
        #expect(try client.receive(exactly: data.count) == data)
        #expect(h.figure("pending") == 0 && h.figure("connects") == 1)
        client.shutdownWrite()
        #expect(try client.receiveToEnd().isEmpty)
        await echo.stop()
    }

    @Test func theStagesTimeoutAppliesItsFallback() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let h = try PendingHost(upstream: echo.ports[0], stage: #"{"pending": {"timeout": "20ms", "fallback": "reject"}}"#)
        defer { h.host.stop() }
        let client = try BlockingTCPClient(host: "127.0.0.1", port: h.port, timeoutSeconds: 10)
        #expect(try client.receiveToEnd().isEmpty)  // rejected by the fallback
        #expect(h.figure("open_timeouts") == 1)
        #expect(h.figure("connects") == 0)
        #expect(((try? httpJSON("GET", port: h.admin, "/stats").json)?["pipelines"]?["test"]?["connections"]?["rejected"]?["policy"]?.intValue) == 1)
        await echo.stop()
    }

    @Test func aVerdictAfterTheTimeoutIsDroppedAndCounted() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let h = try PendingHost(upstream: echo.ports[0], stage: #"{"pending": {"timeout": "20ms", "fallback": "accept"}}"#)
        defer { h.host.stop() }
        let client = try BlockingTCPClient(host: "127.0.0.1", port: h.port, timeoutSeconds: 10)
        try client.send([9])
        #expect(try client.receive(exactly: 1) == [9])  // accepted by the fallback, relaying
        #expect(h.settle("reject") == 1)  // posted, but the wait is over: dropped
        #expect(eventually { h.figure("late_verdicts") == 1 })
        try client.send([8])
        #expect(try client.receive(exactly: 1) == [8])
        await echo.stop()
    }

    @Test func openTimeoutBoundsAStageWithoutATimeoutOfItsOwn() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let h = try PendingHost(upstream: echo.ports[0], stage: #"{"pending": {"fallback": "accept"}}"#,
                                connection: #"{"open_timeout": "30ms"}"#)
        defer { h.host.stop() }
        let client = try BlockingTCPClient(host: "127.0.0.1", port: h.port, timeoutSeconds: 10)
        try client.send([1, 2, 3])
        #expect(try client.receive(exactly: 3) == [1, 2, 3])  // accepted by the fallback
        #expect(h.figure("open_timeouts") == 1)
        await echo.stop()
    }

    @Test func aClientThatResetsWhilePendingIsClosedAndTheStageToldOnce() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let h = try PendingHost(upstream: echo.ports[0], stage: #"{"pending": {"fallback": "accept"}}"#,
                                connection: #"{"open_timeout": "10m"}"#)
        defer { h.host.stop() }
        do {
            let client = try BlockingTCPClient(host: "127.0.0.1", port: h.port, timeoutSeconds: 10)
            #expect(eventually { h.figure("pending") == 1 })
            // A reset is seen at once; a FIN only once reading resumes (nothing is read while
            // pending), which the open timeout bounds.
            client.reset()
        }
        #expect(eventually { h.figure("pending") == 0 && h.figure("active") == 0 })
        let closes = h.events().filter { $0.hasPrefix("close") }
        #expect(closes.count == 1 && closes.first?.hasSuffix("while_pending") == true, "\(closes)")
        #expect(h.figure("connects") == 0)
        await echo.stop()
    }
}

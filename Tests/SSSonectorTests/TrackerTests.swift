import ConfigValues
import StageABI
import Testing
@testable import SSSonectorCore

/// `tracker` through the real ABI with a manual clock.
@Suite(.serialized) struct TrackerTests {
    func number(_ v: JSONValue?) -> Double {
        if case .number(let n)? = v { return n }
        return .nan
    }

    @Test func durationPercentilesMatchKnownData() throws {
        let h = try ChainHarness(stages: [("tracker", "{}")])
        // 100 connections lasting 1 ms, 2 ms, ... 100 ms.
        var open: [(ConnectionChain, UInt64)] = []
        for ms in 1...100 {
            let c = h.connection()
            _ = c.open(now: h.now)
            open.append((c, UInt64(ms)))
        }
        for ms in 1...100 {
            h.clock.advance(milliseconds: 1)
            for (c, d) in open where d == UInt64(ms) { h.finish(c) }
        }
        let d = h.stats(0)["duration_seconds"]
        #expect(abs(number(d?["p50"]) - 0.050) <= 0.050 * 0.07)
        #expect(abs(number(d?["p90"]) - 0.090) <= 0.090 * 0.07)
        #expect(abs(number(d?["p99"]) - 0.099) <= 0.099 * 0.07)
        #expect(number(d?["max"]) == 0.1)
        #expect(abs(number(d?["avg"]) - 0.0505) < 1e-9)
    }

    @Test func activeAndPeakUnderInterleavedOpensAndClosesAndResetKeepsThem() throws {
        let h = try ChainHarness(stages: [("tracker", "{}")])
        let a = h.connection(), b = h.connection(), c = h.connection()
        _ = a.open(now: h.now); _ = b.open(now: h.now)
        h.finish(a)
        _ = c.open(now: h.now)
        let d = h.connection(); _ = d.open(now: h.now)
        h.finish(b)
        var s = h.stats(0)
        #expect(s["active"] == 2)
        #expect(s["peak"] == 3)
        #expect(s["accepted"] == 4)
        let answer = h.control(0, #"{"op": "reset"}"#)
        #expect(answer["reset"] == true)
        s = h.stats(0)
        #expect(s["active"] == 2 && s["peak"] == 3 && s["accepted"] == 0)
        h.finish(c); h.finish(d)
        #expect(h.stats(0)["active"] == 0)
        #expect(h.control(0, #"{"op": "nope"}"#)["error"] != nil)
    }

    @Test func countsRejectionsBytesUpstreamsAndClients() throws {
        let h = try ChainHarness(stages: [("tracker", "{}"), ("scriptstage", #"{"reject": "policy"}"#)])
        let c = h.connection(from: "10.0.0.9")
        guard case .rejected(let stage, let code, let text) = c.open(now: h.now) else { Issue.record("not rejected"); return }
        var info = ConnectionChain.CloseInfo(cause: SSS_CLOSE_REJECTED)
        info.rejectedBy = stage
        info.reasonCode = code
        info.reasonText = text
        c.close(info, now: h.now)
        let s = h.stats(0)
        #expect(s["rejected"] == ["policy": 1])
        #expect(s["rejected_by_stage"] == ["s1": 1])

        let t = try ChainHarness(stages: [("tracker", "{}")])
        let (conn, name) = t.attempt(from: "10.0.0.7")
        #expect(name == "a")
        var close = ConnectionChain.CloseInfo(cause: SSS_CLOSE_CLIENT_EOF)
        close.upstreamIndex = 0  // as the host reports it: the upstream the connection used
        close.upstreamID = t.table.current.entries[0].id
        close.bytesUp = 100
        close.bytesDown = 2000
        conn.close(close, now: t.now)
        let stats = t.stats(0)
        #expect(stats["bytes_up"] == 100 && stats["bytes_down"] == 2000)
        #expect(stats["upstreams"]?["a"] == ["active": 0, "total": 1, "pooled": 0])
        #expect(stats["top_clients_by_bytes"] == [["client": "10.0.0.7", "bytes": 2100]])
    }

    @Test func connectionsPerSecondOverTheLastWindows() throws {
        let h = try ChainHarness(stages: [("tracker", "{}")])
        for _ in 0..<10 { let c = h.connection(); _ = c.open(now: h.now); h.finish(c) }
        h.clock.advance(milliseconds: 1000)
        for _ in 0..<20 { let c = h.connection(); _ = c.open(now: h.now); h.finish(c) }
        h.clock.advance(milliseconds: 1000)
        let r = h.stats(0)["connections_per_second"]
        #expect(r?["1s"] == 20)
        #expect(r?["10s"] == 3)
        #expect(r?["60s"] == 0.5)
    }

    @Test func exportsMetricsThroughTheHost() throws {
        let h = try ChainHarness(stages: [("tracker", "{}")])
        let c = h.connection(); _ = c.open(now: h.now); h.finish(c)
        let names = Set(h.metrics.snapshot().map(\.name))
        #expect(names.isSuperset(of: ["sssonector_tracker_connections_total", "sssonector_tracker_connections_active",
                                      "sssonector_tracker_connection_duration_seconds", "sssonector_tracker_rejected_total"]))
        let text = h.metrics.prometheusText()
        #expect(text.contains(#"sssonector_tracker_connections_total{pipeline="test",stage="s0"} 1"#), "\(text)")
    }
}

import ConfigValues
import Foundation
import Synchronization
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The stock stages in a running host (in this process, so their stats can be read), with real
/// `.so` files and local upstreams on loopback.
@Suite struct StockStagesEndToEndTests {
    /// Runs a host on one pipeline file; returns its port and the runtime; always shuts down.
    func withHost(_ file: String, _ body: (Int, PipelineRuntime) async throws -> Void) async throws {
        let host = Host(files: [file], threads: 2, logger: TestEnvironment.logger, dataPath: TestEnvironment.dataPath)
        let bound = try host.start()
        defer { host.shutdown() }
        let port = try #require(bound.first.flatMap { Int($0.address.split(separator: ":").last ?? "") })
        try await body(port, host.runtimes[0])
    }

    func stats(_ runtime: PipelineRuntime, _ stage: String) -> JSONValue {
        let text = runtime.chain.stages.first { $0.name == stage }?.statsJSON() ?? "null"
        return (try? JSONValue.parse(text)) ?? .null
    }

    /// One echo exchange; true when the bytes came back.
    func exchange(_ port: Int, seed: UInt8 = 1, size: Int = 512) -> Bool { echoExchange(port, size: size, seed: seed) }

    @Test func aBurstFromOneClientIPAdmitsExactlyTheBurst() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])], stages: """
            [{"name": "stats", "plugin": "tracker"},
             {"name": "limit", "plugin": "ratelimit", "config": {"default_rate": 0.001, "default_burst": 5}}]
            """)
        try await withHost(file) { port, runtime in
            let admitted = (0..<12).filter { exchange(port, seed: UInt8($0)) }.count
            #expect(admitted == 5)
            #expect(stats(runtime, "limit")["rejected"] == 7)
            #expect(eventually { stats(runtime, "stats")["rejected"] == ["rate_limited": 7] })
            #expect(runtime.counters.rejectedByReason["rate_limited"] == 7)
        }
        await echo.stop()
    }

    @Test func aBandwidthLimitedTransferArrivesWholeAndInOrder() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("e", echo.ports[0])], stages: """
            [{"name": "limit", "plugin": "ratelimit",
              "config": {"default_rate": 100, "bandwidth": {"rate": "512KiB/s", "burst": "64KiB"}}}]
            """)
        try await withHost(file) { port, runtime in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
            let data = pattern(512 * 1024, seed: 9)
            let started = Date()
            let sent = Atomic<Int>(0)
            let sender = Thread {
                // In 16 KiB sends, counted: a failure says how far each direction got.
                for start in stride(from: 0, to: data.count, by: 16 * 1024) {
                    guard (try? client.send(Array(data[start..<min(start + 16 * 1024, data.count)]))) != nil else { return }
                    sent.wrappingAdd(min(16 * 1024, data.count - start), ordering: .relaxed)
                }
                client.shutdownWrite()
            }
            sender.start()
            var echoed: [UInt8] = []
            do {
                try client.receiveToEnd(into: &echoed)
            } catch {
                Issue.record("\(error) after \(sent.load(ordering: .relaxed)) bytes sent and \(echoed.count) echoed; open connections \(runtime.counters.figures[.active]), limit stage \(stats(runtime, "limit"))")
            }
            #expect(echoed.count == data.count)
            #expect(echoed == data)
            // Not asserted (timing): about (512 KiB - 64 KiB burst) / 512 KiB/s = 0.875 s.
            print("bandwidth-limited 512 KiB echo took \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        }
        await echo.stop()
    }

    @Test func trackerFiguresMatchTheTrafficSent() async throws {
        let echoes = try await EchoUpstreams(count: 2)
        let file = pipelineFile(upstreams: [("a", echoes.ports[0]), ("b", echoes.ports[1])],
                                stages: #"[{"name": "stats", "plugin": "tracker"}]"#)
        try await withHost(file) { port, runtime in
            for i in 0..<10 { #expect(exchange(port, seed: UInt8(i), size: 1000 + i)) }
            let expectedBytes = (0..<10).reduce(0) { $0 + 1000 + $1 }
            #expect(eventually { stats(runtime, "stats")["active"] == 0 })
            let s = stats(runtime, "stats")
            #expect(s["accepted"] == 10)
            #expect(s["bytes_up"] == .int(expectedBytes))
            #expect(s["bytes_down"] == .int(expectedBytes))
            #expect(s["upstreams"] == ["a": ["active": 0, "total": 5, "pooled": 0], "b": ["active": 0, "total": 5, "pooled": 0]])
            #expect(runtime.counters.figures[.bytesUp] == UInt64(expectedBytes))
        }
        await echoes.stop()
    }

    @Test(arguments: [("round_robin", [1, 1, 1], [10, 10, 10]), ("least_connections", [1, 1, 1], [10, 10, 10]),
                      ("weighted_round_robin", [3, 2, 1], [15, 10, 5])])
    func distributionOverThreeUpstreams(_ strategy: String, _ weights: [Int], _ expected: [Int]) async throws {
        let echoes = try await EchoUpstreams(count: 3)
        let ups = echoes.ports.enumerated().map { #"{"name": "u\#($0.offset)", "address": "127.0.0.1:\#($0.element)", "weight": \#(weights[$0.offset])}"# }
        let text = """
        {"version": 1, "name": "test", "listen": {"address": "127.0.0.1:0"}, "upstreams": [\(ups.joined(separator: ","))],
         "stages": [{"name": "lb", "plugin": "balancer", "config": {"strategy": "\(strategy)", "health_check": "0s"}}]}
        """
        try await withHost(TestEnvironment.writeFile("p.json", text)) { port, runtime in
            for i in 0..<30 { #expect(exchange(port, seed: UInt8(i))) }
            let lb = stats(runtime, "lb")["upstreams"]
            #expect((0..<3).map { lb?["u\($0)"]?["picks"] } == expected.map { .int($0) })
        }
        await echoes.stop()
    }

    @Test func anUpstreamThatStopsListeningIsMarkedUnhealthyThenComesBack() async throws {
        let echoes = try await EchoUpstreams(count: 3, sharingPorts: true)
        let downPort = echoes.ports[2]
        let file = pipelineFile(upstreams: [("a", echoes.ports[0]), ("b", echoes.ports[1]), ("c", downPort)], stages: """
            [{"name": "lb", "plugin": "balancer",
              "config": {"health_check": "50ms", "unhealthy_threshold": 2, "healthy_threshold": 2}}]
            """)
        try await withHost(file) { port, runtime in
            // The port stays held, bound but not listening (connects are refused), from before
            // the server stops until after it is back: a test running alongside could
            // otherwise be given it for a listener of its own.
            let held = try RefusingPort(holding: downPort)
            await echoes.servers[2].stop()
            #expect(eventually { stats(runtime, "lb")["upstreams"]?["c"]?["healthy"] == false })
            let before = stats(runtime, "lb")["upstreams"]?["c"]?["total"]
            for i in 0..<9 { #expect(exchange(port, seed: UInt8(i))) }
            #expect(stats(runtime, "lb")["upstreams"]?["c"]?["total"] == before)  // no connection went to c
            let back = try await EchoServer.start(port: downPort, sharingPort: true, group: EchoUpstreams.group)
            held.stop()
            #expect(eventually { stats(runtime, "lb")["upstreams"]?["c"]?["healthy"] == true })
            for i in 0..<9 { #expect(exchange(port, seed: UInt8(i))) }
            #expect(stats(runtime, "lb")["upstreams"]?["c"]?["total"] != before)
            await back.stop()
        }
        await echoes.stop()
    }

    @Test func withOneUpstreamRefusingEveryClientConnectionSucceeds() async throws {
        let echoes = try await EchoUpstreams(count: 2)
        let refused = try RefusingPort()
        defer { refused.stop() }
        let file = pipelineFile(upstreams: [("a", echoes.ports[0]), ("dead", refused.port), ("b", echoes.ports[1])], stages: """
            [{"name": "breaker", "plugin": "breaker", "config": {"max_failures": 3, "reset_timeout": "1m"}},
             {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s", "max_retries": 2}}]
            """)
        try await withHost(file) { port, runtime in
            let failures = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 30) { i in
                if !exchange(port, seed: UInt8(i)) { failures.wrappingAdd(1, ordering: .relaxed) }
            }
            #expect(failures.load(ordering: .relaxed) == 0)
            #expect(runtime.counters.figures[.failedConnects] >= 1)
        }
        await echoes.stop()
    }

    @Test func withEveryUpstreamRefusingTheBreakerOpensThenAHalfOpenTrialClosesIt() async throws {
        let p1 = try RefusingPort(), p2 = try RefusingPort()
        defer { p1.stop(); p2.stop() }
        let file = pipelineFile(upstreams: [("a", p1.port), ("b", p2.port)], stages: """
            [{"name": "breaker", "plugin": "breaker",
              "config": {"max_failures": 2, "reset_timeout": "2s", "half_open_max_calls": 1, "failure_window": "1m"}},
             {"name": "lb", "plugin": "balancer", "config": {"health_check": "0s", "unhealthy_threshold": 1000, "max_retries": 1, "retry_timeout": "0s"}}]
            """, connection: #"{"retry_attempts": 0}"#)
        // reset_timeout bounds the time the five rejections below may take on a slow, loaded
        // machine (the host's clock is real): long enough for that, short enough to wait out.
        try await withHost(file) { port, runtime in
            // Two failures per upstream open both circuits.
            for i in 0..<2 { #expect(!exchange(port, seed: UInt8(i))) }
            #expect(eventually { stats(runtime, "breaker")["upstreams"]?["b"]?["state"] == "open" })
            #expect(stats(runtime, "breaker")["upstreams"]?["a"]?["state"] == "open")
            let attempts = runtime.counters.figures[.failedConnects]
            for i in 0..<5 { #expect(!exchange(port, seed: UInt8(i))) }
            #expect(runtime.counters.figures[.failedConnects] == attempts)  // no connect attempted
            #expect(runtime.counters.rejectedByReason["circuit_open"] == 5)
            // Upstream a comes back; after the reset timeout a trial succeeds and closes it.
            let back = try await EchoServer.start(port: p1.port, sharingPort: true, group: EchoUpstreams.group)
            p1.stop()
            #expect(eventually { exchange(port) })
            #expect(stats(runtime, "breaker")["upstreams"]?["a"]?["state"] == "closed")
            await back.stop()
        }
    }
}

import Foundation
import Synchronization
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The real `sssonector` process, real `.so` stages through libltdl, bytes over loopback.
@Suite struct RelayEndToEndTests {
    /// Starts echo upstreams and the host on a pipeline; runs `body`; stops everything.
    func withHost(
        upstreams count: Int = 1, extraUpstreams: [(String, Int)] = [], stages: String = "[]",
        connection: String = "{}", logLevel: String = "debug",
        _ body: (HostProcess, Int, [Int]) throws -> Void
    ) async throws {
        let echoes = try await EchoUpstreams(count: count)
        let ups = echoes.ports.enumerated().map { ("e\($0.offset)", $0.element) } + extraUpstreams
        let file = pipelineFile(upstreams: ups, stages: stages, connection: connection)
        let host = try HostProcess(["run", "--log-level", logLevel, file])
        do {
            let port = try #require(host.port(of: "test"))
            try body(host, port, echoes.ports)
        } catch {
            host.stop()
            await echoes.stop()
            throw error
        }
        #expect(host.stop() == 0, "graceful stop exits 0; stderr: \(host.stderr.suffix(2000))")
        await echoes.stop()
    }

    @Test func tenMegabytesEachWayArriveIntact() async throws {
        try await withHost { _, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
            let data = pattern(10 * 1024 * 1024)
            let sender = Thread { try? client.send(data); client.shutdownWrite() }
            sender.start()
            let echoed = try client.receiveToEnd()
            #expect(echoed.count == data.count)
            #expect(echoed == data)
        }
    }

    @Test func manyConcurrentConnectionsEachGetTheirOwnBytes() async throws {
        try await withHost(upstreams: 2) { host, port, _ in
            let failures = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 64) { i in
                do {
                    let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
                    let data = pattern(32 * 1024, seed: UInt8(i))
                    try client.send(data)
                    let echoed = try client.receive(exactly: data.count)
                    client.shutdownWrite()
                    let rest = try client.receiveToEnd()
                    if echoed != data || !rest.isEmpty { failures.wrappingAdd(1, ordering: .relaxed) }
                } catch {
                    failures.wrappingAdd(1, ordering: .relaxed)
                }
            }
            #expect(failures.load(ordering: .relaxed) == 0)
            #expect(eventually { host.stderr.components(separatedBy: "cause=client_eof").count - 1 == 64 })
        }
    }

    @Test func halfCloseFromTheClientIsPassedOnAndTheAnswerStillArrives() async throws {
        try await withHost { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try client.send(Array("question".utf8))
            client.shutdownWrite()
            // The echo upstream answers after seeing EOF, then half-closes back.
            #expect(try client.receiveToEnd() == Array("question".utf8))
            #expect(eventually { host.stderr.contains("cause=client_eof") })
        }
    }

    @Test func halfCloseFromTheUpstreamLeavesTheClientSending() async throws {
        let greeter = try GreeterUpstream(greeting: "hello")
        defer { greeter.stop() }
        try await withHost(upstreams: 0, extraUpstreams: [("greeter", greeter.port)]) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            #expect(try client.receiveToEnd() == Array("hello".utf8))  // greeting, then EOF
            try client.send(Array("still talking".utf8))
            client.shutdownWrite()
            #expect(eventually { greeter.record.sawEOF.load(ordering: .relaxed) })
            #expect(greeter.record.received.withLock { $0 } == Array("still talking".utf8))
            #expect(eventually { host.stderr.contains("cause=upstream_eof") })
        }
    }

    @Test func aRefusingUpstreamIsSkippedForTheNext() async throws {
        let refused = try RefusingPort()
        defer { refused.stop() }
        // The refusing upstream comes first, so round robin tries it first for half the connections.
        let echoes = try await EchoUpstreams(count: 1)
        let file = pipelineFile(upstreams: [("down", refused.port), ("up", echoes.ports[0])])
        let host = try HostProcess(["run", "--log-level", "debug", file])
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        for i in 0..<6 {
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let data = pattern(1000, seed: UInt8(i))
            try client.send(data)
            #expect(try client.receive(exactly: data.count) == data)
        }
        #expect(eventually { host.stderr.contains("outcome=refused") })
        await echoes.stop()
    }

    @Test func aConnectTimeoutClosesTheClientWithConnectFailed() async throws {
        let stuck = try FullBacklogListener()
        try await withHost(upstreams: 0, extraUpstreams: [("stuck", stuck.port)],
                           connection: #"{"connect_timeout": "200ms", "retry_attempts": 0}"#) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            #expect(try client.receiveToEnd().isEmpty)
            #expect(eventually { host.stderr.contains("outcome=timeout") && host.stderr.contains("cause=connect_failed") })
        }
    }

    @Test func anIdleConnectionIsClosed() async throws {
        // 1 s: the ping and its echo must come back before it, even on a slow, loaded machine.
        try await withHost(connection: #"{"idle_timeout": "1s"}"#) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try client.send(Array("ping".utf8))
            #expect(try client.receive(exactly: 4) == Array("ping".utf8))
            #expect(try client.receiveToEnd().isEmpty)  // closed by the host, not by us
            #expect(eventually { host.stderr.contains("cause=idle_timeout") })
        }
    }

    @Test func connectionsOverMaxConnectionsAreClosedAtOnceAndCounted() async throws {
        try await withHost(connection: #"{"max_connections": 2}"#) { host, port, _ in
            let a = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let b = try BlockingTCPClient(host: "127.0.0.1", port: port)
            for c in [a, b] {
                try c.send([1, 2, 3])
                #expect(try c.receive(exactly: 3) == [1, 2, 3])
            }
            let third = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let closedAtOnce: Bool
            do { closedAtOnce = try third.receiveToEnd().isEmpty } catch { closedAtOnce = true }  // FIN or RST
            #expect(closedAtOnce)
            a.shutdownWrite()
            _ = try a.receiveToEnd()
            // A slot is free again once the host has seen the close.
            #expect(eventually {
                guard let d = try? BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 2) else { return false }
                return (try? d.send([9])) != nil && (try? d.receive(exactly: 1)) == [9]
            })
        }
    }

    @Test func aStageRejectionClosesTheConnectionWithItsReason() async throws {
        let stages = #"[{"name": "gate", "plugin": "scriptstage", "config": {"reject": "rate_limited"}}]"#
        try await withHost(stages: stages) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let nothing: [UInt8]
            do { nothing = try client.receiveToEnd() } catch { nothing = [] }
            #expect(nothing.isEmpty)
            #expect(eventually { host.stderr.contains("cause=rejected") })
        }
    }

    @Test func theExampleStagesCarryTrafficAndTheCExampleRejectsOutsiders() async throws {
        let allowlist = try CPlugins.allowlist()
        let open = """
        [{"name": "allow", "plugin": "\(allowlist)", "config": {"allow": ["127.0.0.0/8", "::1"]}},
         {"name": "cap", "plugin": "bytecap", "config": {"max_bytes": "1MiB", "max_duration": "1h"}}]
        """
        try await withHost(stages: open) { _, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let data = pattern(200_000)
            let sender = Thread { try? client.send(data); client.shutdownWrite() }
            sender.start()
            #expect(try client.receiveToEnd() == data)
        }
        let closed = #"[{"name": "allow", "plugin": "\#(allowlist)", "config": {"allow": ["10.0.0.0/8"]}}]"#
        try await withHost(stages: closed) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            let nothing: [UInt8]
            do { nothing = try client.receiveToEnd() } catch { nothing = [] }
            #expect(nothing.isEmpty)
            #expect(eventually { host.stderr.contains("cause=rejected") })
        }
    }

    @Test func aStageThatHoldsBytesBackDelaysThemButLosesNone() async throws {
        let stages = #"[{"name": "slow", "plugin": "scriptstage", "config": {"grant": 4096, "retry_after": "2ms"}}]"#
        try await withHost(stages: stages, logLevel: "info") { _, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
            let data = pattern(300_000)
            let sender = Thread { try? client.send(data); client.shutdownWrite() }
            sender.start()
            #expect(try client.receiveToEnd() == data)
        }
    }

    @Test func aResetFromEitherPeerClosesTheOtherSideWithTheCause() async throws {
        let resetting = try ResettingUpstream()
        defer { resetting.stop() }
        try await withHost(upstreams: 0, extraUpstreams: [("rst", resetting.port)]) { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try client.send(Array("boom".utf8))
            let rest: [UInt8]
            do { rest = try client.receiveToEnd() } catch { rest = [] }
            #expect(rest.isEmpty)
            #expect(eventually { host.stderr.contains("cause=upstream_reset") })
        }
        try await withHost { host, port, _ in
            let client = try BlockingTCPClient(host: "127.0.0.1", port: port)
            try client.send(pattern(100_000))
            client.reset()
            #expect(eventually { host.stderr.contains("cause=client_reset") })
        }
    }

    /// An upstream that stops reading stops the host reading from the client (the host buffers
    /// a bounded amount, not everything the client sends), and every byte still arrives once the
    /// upstream reads again. Without backpressure the client would write all 256 MiB.
    @Test func anUpstreamThatStopsReadingStopsTheClientAndLosesNothing() async throws {
        let upstream = try PausedUpstream()
        let file = pipelineFile(upstreams: [("paused", upstream.port)], connection: #"{"buffer_limit": "64KiB"}"#)
        let host = try HostProcess(["run", file])
        defer { host.stop() }
        let port = try #require(host.port(of: "test"))
        let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
        let relayed = upstream.accept()
        try #require(relayed >= 0)
        defer { close(relayed) }

        // Write without blocking until the client's writes stall for half a second.
        _ = fcntl(client.fd, F_SETFL, fcntl(client.fd, F_GETFL) | O_NONBLOCK)
        let chunk = pattern(64 * 1024)
        let cap = 256 * 1024 * 1024
        var written = 0
        while written < cap {
            let n = chunk.withUnsafeBytes { write(client.fd, $0.baseAddress! + written % chunk.count, chunk.count - written % chunk.count) }
            if n > 0 { written += n; continue }
            guard errno == EAGAIN else { break }
            var p = pollfd(fd: client.fd, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, 500) == 0 { break }  // stalled: the host stopped reading
        }
        #expect(written < 64 * 1024 * 1024, "the host kept reading while its upstream could not take bytes")
        _ = fcntl(client.fd, F_SETFL, fcntl(client.fd, F_GETFL) & ~O_NONBLOCK)
        client.shutdownWrite()

        // The upstream reads again: every byte arrives, in order, then the FIN.
        var received = 0
        var intact = true
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(relayed, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            for i in 0..<n where buffer[i] != chunk[(received + i) % chunk.count] { intact = false }
            received += n
        }
        #expect(received == written)
        #expect(intact)
    }
}

import ConfigValues
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The reverse tunnel end to end (docs/reverse-tunnel.md): real relay and connector processes,
/// mutual TLS with certificates from `certs init --connector`, bytes over loopback.
@Suite struct ReverseTunnelEndToEndTests {
    /// Echoes `data` through a new connection to `port`: send, half-close, read to the end.
    func roundTrip(_ port: Int, _ data: [UInt8]) throws -> [UInt8] {
        let client = try BlockingTCPClient(host: "127.0.0.1", port: port, timeoutSeconds: 30)
        let sender = Thread { try? client.send(data); client.shutdownWrite() }
        sender.start()
        return try client.receiveToEnd()
    }

    @Test func aThousandConcurrentClientsCrossOneConnectorIntactAndInOrder() async throws {
        let echo = try await EchoUpstreams(count: 1)
        // A thousand stream opens at once take a while on a loaded machine (or under
        // ThreadSanitizer): the connect timeout must not be what this test measures.
        let tunnel = try ReverseTunnelHosts(connection: #"{"retry_attempts": 0, "connect_timeout": "180s"}"#)
        let connector = try tunnel.startConnector(upstreamPort: echo.ports[0])
        defer { connector.stop(); tunnel.stop() }
        #expect(eventually { tunnel.serviceFigure("connections") == 2 })
        // Every client is connected (a stream open to the connector) before any byte moves.
        var clients: [BlockingTCPClient] = []
        for _ in 0..<1000 { clients.append(try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 180)) }
        #expect(eventually(180) { tunnel.serviceFigure("streams") == 1000 }, "\(tunnel.serviceStats())")
        #expect(ReverseTunnelHosts.connectorFigure(connector, "streams_total") == 1000)
        let payloads = (0..<1000).map { pattern(3000 + $0, seed: UInt8(truncatingIfNeeded: $0)) }
        for (client, data) in zip(clients, payloads) {
            try client.send(data)
            client.shutdownWrite()
        }
        var intact = 0
        var stuck: [Int] = []
        for (i, (client, data)) in zip(clients, payloads).enumerated() {
            do {
                if try client.receiveToEnd() == data { intact += 1 }
            } catch {
                stuck.append(i)
            }
        }
        #expect(intact == 1000, "no answer within 30 s on clients \(stuck)")
        #expect(eventually { tunnel.serviceFigure("streams") == 0 })
        let bytes = payloads.reduce(0) { $0 + $1.count }
        #expect(eventually { tunnel.serviceFigure("bytes_up") == bytes && tunnel.serviceFigure("bytes_down") == bytes })
        #expect(connector.stop() == 0)
        await echo.stop()
    }

    @Test func aConnectorKilledMidTrafficEndsItsStreamsAndARestartedOneServesWithoutLeaks() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let tunnel = try ReverseTunnelHosts()
        defer { tunnel.stop() }
        var connector = try tunnel.startConnector(upstreamPort: echo.ports[0])
        #expect(eventually { tunnel.serviceFigure("connections") == 2 })
        let baseline = ReverseTunnelHosts.openDescriptors(tunnel.relay)
        // Long-lived connections, each mid-conversation.
        var open: [BlockingTCPClient] = []
        for i in 0..<20 {
            let client = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 10)
            let data = pattern(5000, seed: UInt8(i))
            try client.send(data)
            #expect(try client.receive(exactly: data.count) == data)
            open.append(client)
        }
        kill(connector.process.processIdentifier, SIGKILL)
        connector.process.waitUntilExit()
        // Their streams end (no hang), the relay stays up and forgets the connector.
        for client in open { _ = try? client.receiveToEnd() }
        #expect(eventually { tunnel.serviceFigure("connections") == 0 && tunnel.serviceFigure("streams") == 0 })
        #expect(tunnel.relay.process.isRunning)
        // With no connector, a client is closed at once and counted.
        do {
            let unserved = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 10)
            #expect(try unserved.receiveToEnd().isEmpty)
            #expect(tunnel.serviceFigure("unserved") >= 1)
        }
        // A new connector process registers and serves new connections.
        connector = try tunnel.startConnector(upstreamPort: echo.ports[0])
        defer { connector.stop() }
        #expect(eventually { tunnel.serviceFigure("connections") == 2 })
        for i in 0..<20 {
            let data = pattern(20_000, seed: UInt8(100 + i))
            #expect(try roundTrip(tunnel.publicPort, data) == data)
        }
        open.removeAll()  // closes them
        // Nothing leaked across the reconnect: the relay holds what it held before.
        #expect(eventually { tunnel.serviceFigure("streams") == 0 && ReverseTunnelHosts.openDescriptors(tunnel.relay) == baseline },
                "descriptors \(ReverseTunnelHosts.openDescriptors(tunnel.relay)) vs \(baseline)")
        await echo.stop()
    }

    @Test func aConnectorFromAnotherCAOrWithAnIdentityNotAllowedIsRefused() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let tunnel = try ReverseTunnelHosts()
        defer { tunnel.stop() }
        // Another CA: the relay's TLS handshake refuses it.
        let otherCA = TestEnvironment.temporaryDirectory() + "/other"
        let stranger = try tunnel.startConnector(upstreamPort: echo.ports[0], certs: otherCA, connections: 1, name: "stranger")
        #expect(eventually { tunnel.relayFigure("handshake_failures") >= 1 })
        #expect(eventually { ReverseTunnelHosts.connectorFigure(stranger, "refusals", pipeline: "stranger") >= 1 })
        stranger.stop()
        // The right CA, an identity the service does not allow: refused at registration, with the reason.
        let intruder = try tunnel.startConnector(upstreamPort: echo.ports[0], identity: "intruder.example", connections: 1, name: "intruder")
        #expect(eventually { tunnel.serviceFigure("refused") >= 1 })
        #expect(eventually { ReverseTunnelHosts.connectorFigure(intruder, "refusals", pipeline: "intruder") >= 1 })
        #expect(eventually { intruder.stderr.contains("is not allowed to serve") })
        #expect(ReverseTunnelHosts.connectorFigure(intruder, "connected", pipeline: "intruder") == 0)
        intruder.stop()
        // Neither ever served: clients find no connector.
        #expect(tunnel.serviceFigure("connections") == 0)
        let client = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 10)
        #expect(try client.receiveToEnd().isEmpty)
        #expect(tunnel.serviceFigure("unserved") >= 1 && tunnel.serviceFigure("streams_total") == 0)
        await echo.stop()
    }

    @Test func aClientThatStopsReadingDoesNotStallTheOtherStreams() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let tunnel = try ReverseTunnelHosts()
        let connector = try tunnel.startConnector(upstreamPort: echo.ports[0], connections: 1)
        defer { connector.stop(); tunnel.stop() }
        #expect(eventually { tunnel.serviceFigure("connections") == 1 })
        // One client sends 64 MiB and reads nothing: its echo fills every buffer on the way
        // back and its stream's window, on the one connection all streams share.
        let slow = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 60)
        let bulk = pattern(64 << 20, seed: 9)
        let sent = Atomic<Bool>(false)
        let sender = Thread { try? slow.send(bulk); slow.shutdownWrite(); sent.store(true, ordering: .relaxed) }
        sender.start()
        #expect(eventually(30) { tunnel.serviceFigure("streams") == 1 })
        // Meanwhile small requests on other streams of the same connection are answered.
        for i in 0..<50 {
            let data = pattern(1000, seed: UInt8(i))
            let echoed = try roundTrip(tunnel.publicPort, data)
            #expect(echoed.count == data.count && echoed == data, "\(echoed.count) bytes back")
        }
        let stillHeldBack = !sent.load(ordering: .relaxed)
        #expect(stillHeldBack, "the slow client's sender was never held back")
        // The slow client reads at last and gets every byte, in order.
        let echoed = try slow.receiveToEnd()
        #expect(echoed.count == bulk.count && echoed == bulk, "\(echoed.count) bytes back")
        await echo.stop()
    }

    @Test func halfClosesCrossTheTunnelBothWays() async throws {
        let echo = try await EchoUpstreams(count: 1)
        let greeter = try GreeterUpstream(greeting: "hello")
        defer { greeter.stop() }
        let tunnel = try ReverseTunnelHosts()
        defer { tunnel.stop() }
        // Client first: the question, FIN; the echo answers after it and then closes.
        var connector = try tunnel.startConnector(upstreamPort: echo.ports[0], connections: 1)
        #expect(eventually { tunnel.serviceFigure("connections") == 1 })
        let client = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 10)
        try client.send(Array("question".utf8))
        client.shutdownWrite()
        #expect(try client.receiveToEnd() == Array("question".utf8))
        connector.stop()
        #expect(eventually { tunnel.serviceFigure("connections") == 0 })
        // Upstream first: it greets and half-closes; the client keeps sending after that.
        connector = try tunnel.startConnector(upstreamPort: greeter.port, connections: 1, name: "greeter")
        defer { connector.stop() }
        #expect(eventually { tunnel.serviceFigure("connections") == 1 })
        let talker = try BlockingTCPClient(host: "127.0.0.1", port: tunnel.publicPort, timeoutSeconds: 10)
        #expect(try talker.receiveToEnd() == Array("hello".utf8))
        try talker.send(Array("still talking".utf8))
        talker.shutdownWrite()
        let record = greeter.record
        #expect(eventually { record.sawEOF.load(ordering: .relaxed) })
        #expect(record.received.withLock { $0 } == Array("still talking".utf8))
        await echo.stop()
    }
}

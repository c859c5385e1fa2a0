import ConfigValues
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import StageABI
import Testing
@testable import SSSonectorCore

/// The reverse tunnel's logic without sockets: the reconnect schedule (given clock and random
/// numbers), the stream codec (an `EmbeddedChannel`), the relay's authorization and choice of
/// connection, and the pipeline and relay files.
@Suite struct ReverseTunnelUnitTests {
    // MARK: reconnect schedule

    @Test func reconnectsRetryQuicklyThenBackOffExponentiallyToThirtySeconds() {
        var backoff = ReconnectBackoff()
        let delays = (0..<12).map { _ in backoff.nextDelay(refused: false, now: 0, random: 0.5) / 1_000_000 }
        #expect(delays == [200, 200, 200, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000])
    }

    @Test func jitterSpreadsEachDelayByThirtyPercentEitherWay() {
        var low = ReconnectBackoff(), high = ReconnectBackoff()
        for _ in 0..<4 {
            _ = low.nextDelay(refused: false, now: 0, random: 0)
            _ = high.nextDelay(refused: false, now: 0, random: 0.999_999)
        }
        #expect(low.nextDelay(refused: false, now: 0, random: 0) == 1_400_000_000)  // 2 s × 0.7
        #expect(high.nextDelay(refused: false, now: 0, random: 1) == 2_600_000_000)  // 2 s × 1.3
    }

    @Test func aRefusalWaitsAMinuteDoublingToFifteenAndAStableConnectionResets() {
        var backoff = ReconnectBackoff()
        let refusals = (0..<6).map { _ in backoff.nextDelay(refused: true, now: 0, random: 0.5) / 1_000_000_000 }
        #expect(refusals == [60, 120, 240, 480, 900, 900])
        for _ in 0..<6 { _ = backoff.nextDelay(refused: false, now: 0, random: 0.5) }
        // Up for a minute: the next loss starts the quick retries again.
        backoff.connected(now: 1_000)
        #expect(backoff.nextDelay(refused: false, now: 1_000 + ReconnectBackoff.stableAfter, random: 0.5) == 200_000_000)
        // Up for less: no reset, so a flapping relay cannot make a connector retry at full speed.
        backoff.connected(now: 2_000)
        #expect(backoff.nextDelay(refused: false, now: 2_000 + 1_000_000, random: 0.5) == 200_000_000)
        #expect(backoff.failures == 2)
    }

    // MARK: stream codec

    func headers(_ pairs: [(String, String)], end: Bool = false) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: HPACKHeaders(pairs), endStream: end))
    }

    func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    /// Records inbound events after the codec.
    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes = ""
        var inputClosed = false
        var errors: [Error] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { bytes += String(buffer: unwrapInboundIn(data)) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let e = event as? ChannelEvent, e == .inputClosed { inputClosed = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { errors.append(error) }
    }

    func outbound(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    func status(_ frame: HTTP2Frame.FramePayload?) -> (String?, Bool) {
        guard case .headers(let h) = frame else { return (nil, false) }
        return (h.headers.first(name: ":status") ?? h.headers.first(name: ":method"), h.endStream)
    }

    @Test func theRelaySideSendsConnectAndTurnsFramesIntoBytesAndHalfCloses() throws {
        let channel = EmbeddedChannel()
        let answered = channel.eventLoop.makePromise(of: Void.self)
        let recorder = Recorder()
        let request = TunnelProtocol.connectRequest(service: "db", client: "203.0.113.5:4000")
        try channel.pipeline.syncOperations.addHandlers([TunnelStreamCodec(.opener(request: request, answered: answered)), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let sent = try outbound(channel)
        guard case .headers(let h) = sent.first else { Issue.record("no CONNECT"); return }
        #expect(h.headers.first(name: ":method") == "CONNECT" && h.headers.first(name: ":authority") == "db")
        #expect(h.headers.first(name: TunnelProtocol.clientHeader) == "203.0.113.5:4000")
        try channel.writeInbound(headers([(":status", "200")]))
        try answered.futureResult.wait()
        try channel.writeInbound(data("hello"))
        try channel.writeInbound(data(" world", end: true))
        #expect(recorder.bytes == "hello world" && recorder.inputClosed)
        // Our half-close is an empty DATA frame with END_STREAM.
        try channel.writeAndFlush(ByteBuffer(string: "bye")).wait()
        channel.close(mode: .output, promise: nil)
        let out = try outbound(channel)
        guard case .data(let last) = out.last, case .data(let first) = out.first else { Issue.record("no data frames"); return }
        #expect(first.data == .byteBuffer(ByteBuffer(string: "bye")) && !first.endStream)
        #expect(last.endStream && last.data.readableBytes == 0)
        // Both halves ended: closing does not reset the stream (the END_STREAM could be overtaken).
        channel.close(promise: nil)
        #expect(channel.isActive)
    }

    @Test func anAnswerOtherThan200FailsTheAttemptAndAResetIsAConnectionReset() throws {
        let channel = EmbeddedChannel()
        let answered = channel.eventLoop.makePromise(of: Void.self)
        let recorder = Recorder()
        try channel.pipeline.syncOperations.addHandlers([
            TunnelStreamCodec(.opener(request: TunnelProtocol.connectRequest(service: "db", client: nil), answered: answered)), recorder,
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(headers([(":status", "502")], end: true))
        #expect(throws: TunnelStreamRefused.self) { try answered.futureResult.wait() }
        #expect(UpstreamConnector.classify(TunnelStreamRefused(status: "502")).0 == SSS_CONNECT_REFUSED)
        #expect(UpstreamConnector.classify(NoConnector(service: "db")).0 == SSS_CONNECT_REFUSED)
        channel.pipeline.fireErrorCaught(NIOHTTP2Errors.streamClosed(streamID: 1, errorCode: .cancel))
        #expect(recorder.errors.contains { UpstreamConnector.isReset($0) })
    }

    @Test func theConnectorSideAnswers200WhenConnectedAnd502WhenClosedBefore() throws {
        for connects in [true, false] {
            let channel = EmbeddedChannel()
            var requests: [HPACKHeaders] = []
            try channel.pipeline.syncOperations.addHandler(TunnelStreamCodec(.acceptor(onRequest: { _, h in requests.append(h) })))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeInbound(headers([(":method", "CONNECT"), (":authority", "db")]))
            #expect(requests.count == 1)
            #expect(try outbound(channel).isEmpty)  // nothing until the upstream is connected
            if connects {
                channel.pipeline.triggerUserOutboundEvent(TunnelUpstreamConnected(), promise: nil)
                let (code, end) = status(try outbound(channel).first)
                #expect(code == "200" && !end)
            } else {
                channel.close(promise: nil)
                let (code, end) = status(try outbound(channel).first)
                #expect(code == "502" && end)
            }
        }
    }

    // MARK: the relay's table

    /// A registered connection on an embedded loop of its own.
    func connection(_ service: String, identity: String = "c1") throws -> TunnelConnection {
        let channel = EmbeddedChannel()
        let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()) { $0.close() }
        return TunnelConnection(channel: channel, multiplexer: multiplexer, service: service, identity: identity, address: "a")
    }

    func relay(_ services: [(String, [String])]) -> RelayConfig {
        RelayConfig(file: "r.json", name: "r", address: EndpointAddress(host: "127.0.0.1", port: 1), text: "127.0.0.1:1",
                    tls: ServerTLSSettings(certificate: "c", key: "k", clientCA: "ca", minimumVersion: "1.3"),
                    services: services.map { ($0.0, $0.1) })
    }

    @Test func theRelayAuthorizesAnIdentityPerServiceAndCountsRefusals() throws {
        let hub = RelayHub()
        hub.configure([relay([("db", ["db1.example", "spiffe://acme/db"]), ("web", ["web1.example"])])])
        #expect(try hub.authorize(names: ["other", "db1.example"], service: "db").get() == "db1.example")
        #expect(try hub.authorize(names: ["spiffe://acme/db"], service: "db").get() == "spiffe://acme/db")
        guard case .failure(let refusal) = hub.authorize(names: ["web1.example"], service: "db") else { Issue.record(); return }
        #expect(refusal.message.contains("not allowed to serve \"db\""))
        guard case .failure(let unknown) = hub.authorize(names: ["db1.example"], service: "mail") else { Issue.record(); return }
        #expect(unknown.message.contains("no relay file declares service \"mail\""))
        #expect(hub.figures[.unknownServices] == 1)
        #expect(hub.json["services"]?["db"]?["refused"] == .number(1))
    }

    @Test func aStreamGoesToTheLeastLoadedConnectionOnTheClientsOwnLoopFirst() throws {
        let hub = RelayHub()
        hub.configure([relay([("db", ["c1"])])])
        let a = try connection("db"), b = try connection("db"), c = try connection("db")
        [a, b, c].forEach(hub.register)
        b.streamOpened()
        // b's loop is preferred even though it is busier than the others.
        #expect(hub.pick(service: "db", loop: b.loop)?.0 === b)
        // A loop with no connection: the least loaded anywhere.
        let elsewhere = EmbeddedEventLoop()
        a.streamOpened()
        #expect(hub.pick(service: "db", loop: elsewhere)?.0 === c)
        hub.unregister(c)
        #expect(hub.pick(service: "db", loop: elsewhere).map { $0.0 === a || $0.0 === b } == true)
        #expect(hub.pick(service: "mail", loop: elsewhere) == nil)
        // Reloading with an allow list that drops the identity closes its connections.
        hub.configure([relay([("db", ["someone-else"])])])
        #expect(hub.pick(service: "db", loop: elsewhere) == nil)
        #expect(hub.json["services"]?["db"]?["unserved"] == .number(1))  // an unknown service counts nowhere
    }

    // MARK: files

    func errors(_ text: String) -> [String] {
        guard case .failure(let e) = PipelineDecoder.decodeFile(text: text, file: "f.json") else { return [] }
        return e.errors.map(\.description)
    }

    @Test func connectorAndRelayFilesDecodeAndTheirMistakesNameThePath() throws {
        let connector = try PipelineDecoder.decode(text: """
            {"version": 1, "name": "c", "listen": {"reverse": {"relay": "relay.example:8443", "service": "billing-db",
              "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "c.key", "server_name": "relay.example"}}},
             "upstreams": [{"name": "db", "address": "127.0.0.1:5432"}]}
            """, file: "/etc/s/c.json").get()
        #expect(connector.listen.reverse?.service == "billing-db" && connector.listen.reverse?.connections == 2)
        #expect(connector.listen.reverse?.tls.ca == "/etc/s/ca.pem")
        guard case .success(.relay(let relay)) = PipelineDecoder.decodeFile(text: """
            {"version": 1, "name": "tunnels", "relay": {"address": "0.0.0.0:8443",
              "tls": {"cert": "r.pem", "key": "r.key", "client_ca": "ca.pem"},
              "services": {"billing-db": {"allow": ["db1.connector.example"]}}}}
            """, file: "r.json") else { Issue.record("relay file"); return }
        #expect(relay.services.map(\.name) == ["billing-db"] && relay.tls.minimumVersion == "1.3")

        #expect(errors(#"{"version": 1, "name": "c", "listen": {"address": "127.0.0.1:1", "reverse": {"relay": "r:1", "service": "s", "tls": {"ca": "a", "cert": "b", "key": "c"}}}, "upstreams": [{"name": "u", "address": "127.0.0.1:2"}]}"#)
            .contains { $0.hasPrefix("listen.address: a connector (listen.reverse) binds no address") })
        #expect(errors(#"{"version": 1, "name": "c", "listen": {"reverse": {"relay": "r:1", "service": "s", "tls": {"ca": "a"}}}, "upstreams": [{"name": "u", "address": "127.0.0.1:2"}]}"#)
            .contains { $0.hasPrefix("listen.reverse.tls.cert: required") })
        #expect(errors(#"{"version": 1, "name": "c", "listen": {"reverse": {"relay": "r:1", "service": "bad name", "tls": {"ca": "a", "cert": "b", "key": "c"}}}, "upstreams": [{"name": "u", "address": "127.0.0.1:2"}]}"#)
            .contains { $0.hasPrefix("listen.reverse.service: expected a service name") })
        #expect(errors(#"{"version": 1, "name": "c", "listen": {"reverse": {"relay": "r:1", "service": "s", "connections": 0, "tls": {"ca": "a", "cert": "b", "key": "c"}}}, "upstreams": [{"name": "u", "address": "127.0.0.1:2"}]}"#)
            .contains { $0.hasPrefix("listen.reverse.connections:") })
        #expect(errors(#"{"version": 1, "name": "p", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "u", "reverse": {"service": "s"}, "tls": {}}]}"#)
            .contains { $0.hasPrefix("upstreams[0].tls: a reverse upstream has no tls") })
        #expect(errors(#"{"version": 1, "name": "r", "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b"}, "services": {"s": {"allow": ["x"]}}}}"#)
            .contains { $0.hasPrefix("relay.tls.client_ca: required") })
        #expect(errors(#"{"version": 1, "name": "r", "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b", "client_ca": "c"}, "services": {"s": {"allow": []}}}}"#)
            .contains { $0.hasPrefix("relay.services.s.allow: required") })
        #expect(errors(#"{"version": 1, "name": "r", "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b", "client_ca": "c"}, "services": {"s": {"allow": ["x"], "alow": 1}}}}"#)
            .contains { $0.hasPrefix("relay.services.s.alow: unknown key") })
        #expect(errors(#"{"version": 1, "name": "r", "listen": {"address": "127.0.0.1:0"}, "relay": {"address": "0.0.0.0:1", "tls": {"cert": "a", "key": "b", "client_ca": "c"}, "services": {"s": {"allow": ["x"]}}}}"#)
            .contains { $0.hasPrefix("listen: unknown key") })
    }

    @Test func aReverseUpstreamMustNameAServiceOfARelayFileOfTheHost() throws {
        let file = TestEnvironment.writeFile("exposes.json", """
            {"version": 1, "name": "p", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "u", "reverse": {"service": "billing"}}]}
            """)
        let result = try HostProcess.runToEnd(["validate", file])
        #expect(result.status == 2)
        #expect(result.stdout.contains("upstreams[0].reverse.service: no relay file declares service \"billing\" (no relay file is loaded)")
                || result.stderr.contains("upstreams[0].reverse.service: no relay file declares service \"billing\""), "\(result.stdout)\(result.stderr)")
    }
}

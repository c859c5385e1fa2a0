import NIOCore
import NIOHTTP2
import NIOPosix

/// Opens the relay's side of a client connection to a reverse upstream: a CONNECT stream on a
/// connector connection registered for the service. The returned channel is what the session
/// relays to, on the session's own loop: the stream itself when the connection lives on that
/// loop (the usual case, `RelayHub.pick` prefers it), else one end of a socket pair whose other
/// end is glued to the stream on the connection's loop (`LoopBridge`). The future succeeds when
/// the connector answers `200` (its upstream is connected), within `connect_timeout`.
enum ReverseStreamOpener {
    static func open(service: String, hub: RelayHub?, on loop: EventLoop, settings: ConnectionSettings, client: SocketAddress?,
                     initializer: @escaping @Sendable (Channel) throws -> Void) -> EventLoopFuture<Channel> {
        guard let hub, let (connection, figures) = hub.pick(service: service, loop: loop) else {
            return loop.makeFailedFuture(NoConnector(service: service))
        }
        let result = loop.makePromise(of: Channel.self)
        let connectionLoop = connection.loop
        let sameLoop = connectionLoop === loop
        let answered = connectionLoop.makePromise(of: Void.self)
        let request = TunnelProtocol.connectRequest(service: service, client: client.map(Host.describe))
        connection.streamOpened()
        figures.add(.streams)
        figures.add(.streamsTotal)
        let codec: @Sendable () -> TunnelStreamCodec = {
            TunnelStreamCodec(.opener(request: request, answered: answered)) { written, read in
                connection.streamClosed()
                figures.subtract(.streams)
                figures.add(.bytesUp, written)
                figures.add(.bytesDown, read)
            }
        }
        let stream = connectionLoop.makePromise(of: Channel.self)
        let bridge: EventLoopFuture<LoopBridge.Pair?> = sameLoop
            ? connectionLoop.makeSucceededFuture(nil)
            : LoopBridge.make(streamLoop: connectionLoop, sessionLoop: loop, initializer: initializer).map { Optional($0) }
        bridge.whenComplete { made in
            switch made {
            case .failure(let error): stream.fail(error)
            case .success(let pair):
                connection.multiplexer.createStreamChannel(promise: stream) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(codec())
                        if let pair { try LoopBridge.glue(channel, to: pair.remote) } else { try initializer(channel) }
                    }
                }
            }
        }
        stream.futureResult.whenFailure { error in
            // The stream never opened: its codec never ran, so undo the counts here.
            connection.streamClosed()
            figures.subtract(.streams)
            answered.fail(error)
            bridge.whenSuccess { $0?.close() }
        }
        // The timer and the answer both complete `result` on `loop`; the first one wins.
        let settled = NIOLoopBoundBox(false, eventLoop: loop)
        let timeout = loop.scheduleTask(in: .nanoseconds(Int64(clamping: settings.connectTimeout))) {
            guard !settled.value else { return }
            settled.value = true
            result.fail(ChannelError.connectTimeout(.nanoseconds(Int64(clamping: settings.connectTimeout))))
        }
        answered.futureResult.whenFailure { error in
            // 503: the connector is stopping; send no more streams its way.
            if let refused = error as? TunnelStreamRefused, refused.status == "503" { hub.unregister(connection) }
        }
        let ready = answered.futureResult.and(stream.futureResult).and(bridge).map { both, pair in pair?.local ?? both.1 }
        ready.hop(to: loop).whenComplete { outcome in
            timeout.cancel()
            guard !settled.value else {
                if case .success(let channel) = outcome { channel.close(promise: nil) }
                return
            }
            settled.value = true
            switch outcome {
            case .success(let channel): result.succeed(channel)
            case .failure(let error): result.fail(error)
            }
        }
        // Whoever loses (a timeout, or a refusal) closes the stream: a reset the connector sees.
        result.futureResult.whenFailure { _ in
            stream.futureResult.whenSuccess { $0.close(promise: nil) }
            bridge.whenSuccess { $0?.close() }
        }
        return result.futureResult
    }
}

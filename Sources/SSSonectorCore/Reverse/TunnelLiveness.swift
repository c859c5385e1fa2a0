import NIOCore
import NIOHTTP2

/// Keeps a tunnel connection honest on both ends: a PING every `TunnelProtocol.pingInterval`,
/// and the connection closed when nothing (no frame at all) has arrived for
/// `TunnelProtocol.pingTimeout`: a half-open connection (a peer gone without a FIN, a NAT that
/// forgot the mapping) is found in bounded time and its streams end. It also reports GOAWAY
/// debug data, which is how a relay says why it refused a connector, and the connection's errors
/// (with TLS 1.3 a client learns that the server refused its certificate only after its own
/// handshake has completed).
final class TunnelLiveness: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var timer: RepeatedTask?
    private var lastHeard = NIODeadline.now()
    /// Set by the relay once the connection registered: a connector's GOAWAY unregisters it.
    var onGoAway: (String) -> Void
    private let onError: (Error) -> Void

    init(onGoAway: @escaping (String) -> Void = { _ in }, onError: @escaping (Error) -> Void = { _ in }) {
        self.onGoAway = onGoAway
        self.onError = onError
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        onError(error)
        context.fireErrorCaught(error)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: TunnelProtocol.pingInterval, delay: TunnelProtocol.pingInterval) { _ in
            handler.value.tick(bound.value)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func tick(_ context: ChannelHandlerContext) {
        if NIODeadline.now() - lastHeard > TunnelProtocol.pingTimeout {
            context.close(promise: nil)
            return
        }
        let ping = HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: 0x5353_536f_6e65_6374), ack: false))
        context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastHeard = .now()
        let frame = unwrapInboundIn(data)
        if case .goAway(_, _, let opaque) = frame.payload {
            onGoAway(opaque.map { String(buffer: $0) } ?? "")
        }
        context.fireChannelRead(data)
    }

    /// Stream frames count as traffic too (the multiplexer consumes them before this handler).
    func channelReadComplete(context: ChannelHandlerContext) {
        lastHeard = .now()
        context.fireChannelReadComplete()
    }
}

import Glibc
import NIOCore
import NIOHPACK
import NIOHTTP2

/// One tunnel stream as the relay's sessions see a socket: DATA frames in and out as bytes,
/// END_STREAM as a half-close both ways (`inputClosed` in, `close(mode: .output)` out), a reset
/// stream as `ECONNRESET`. The session above it is the same `ProxySession` as for TCP.
///
/// The relay side (`opener`) sends the CONNECT request when added and completes `answered` with
/// the connector's answer; the connector side (`acceptor`) hands the request to `onRequest`,
/// answers `200` when told the upstream is connected (`TunnelUpstreamConnected`), and `502` if the
/// stream closes before that.
final class TunnelStreamCodec: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    enum Role {
        case opener(request: HPACKHeaders, answered: EventLoopPromise<Void>)
        case acceptor(onRequest: (ChannelHandlerContext, HPACKHeaders) -> Void)
    }

    private let role: Role
    /// Opener: the answer arrived. Acceptor: the request arrived / the answer went out.
    private var requestSeen = false
    private var answered = false
    private var sentEnd = false
    private var receivedEnd = false
    /// Payload bytes written and read, reported once when the stream ends.
    private var bytesOut: UInt64 = 0
    private var bytesIn: UInt64 = 0
    private let onEnd: ((_ bytesOut: UInt64, _ bytesIn: UInt64) -> Void)?

    init(_ role: Role, onEnd: ((_ bytesOut: UInt64, _ bytesIn: UInt64) -> Void)? = nil) {
        self.role = role
        self.onEnd = onEnd
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context)
        context.fireChannelActive()
    }

    private var requestSent = false

    /// The relay's CONNECT, once the stream is active.
    private func sendRequest(_ context: ChannelHandlerContext) {
        guard case .opener(let request, _) = role, !requestSent else { return }
        requestSent = true
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: request))), promise: nil)
        context.read()  // the session holds reads back until connected; the answer must come in
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .opener = role, !answered { context.read() }
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .data(let frame):
            if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
                bytesIn &+= UInt64(bytes.readableBytes)
                context.fireChannelRead(wrapInboundOut(bytes))
            }
            if frame.endStream { endReceived(context) }
        case .headers(let frame):
            headersReceived(context, frame.headers)
            if frame.endStream { endReceived(context) }
        default:
            break  // RST_STREAM arrives as an error; window updates and priority are the multiplexer's
        }
    }

    private func headersReceived(_ context: ChannelHandlerContext, _ headers: HPACKHeaders) {
        switch role {
        case .opener(_, let promise):
            guard !answered else { return }  // trailers
            answered = true
            let status = headers.first(name: ":status") ?? "none"
            if status == "200" {
                promise.succeed(())
            } else {
                promise.fail(TunnelStreamRefused(status: status))
            }
        case .acceptor(let onRequest):
            guard !requestSeen else { return }
            requestSeen = true
            onRequest(context, headers)
        }
    }

    private func endReceived(_ context: ChannelHandlerContext) {
        guard !receivedEnd else { return }
        receivedEnd = true
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset stream is to the session what a reset socket is.
        if let closed = error as? NIOHTTP2Errors.StreamClosed {
            context.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "tunnel stream reset (\(closed.errorCode))"))
        } else {
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .opener(_, let promise) = role, !answered {
            answered = true
            promise.fail(ChannelError.eof)
        }
        onEnd?(bytesOut, bytesIn)
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        bytesOut &+= UInt64(bytes.readableBytes)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output:
            guard !sentEnd else { promise?.succeed(()); return }
            sentEnd = true
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: promise)
        case .input:
            promise?.succeed(())
        case .all:
            if case .acceptor = role, requestSeen, !answered {
                // The connector could not serve the stream (no upstream, a stage refused it).
                answered = true
                context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: [":status": "502"], endStream: true))), promise: nil)
            } else if sentEnd && receivedEnd {
                // Both halves ended: the stream closes by itself once our END_STREAM is out;
                // a reset now could overtake it.
                promise?.succeed(())
                return
            }
            context.close(mode: .all, promise: promise)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is TunnelUpstreamConnected else { return context.triggerUserOutboundEvent(event, promise: promise) }
        if case .acceptor = role, !answered {
            answered = true
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: promise)
        } else {
            promise?.succeed(())
        }
    }
}

/// Sent down a connector's stream when its session has connected the upstream: the codec
/// answers the relay's CONNECT with `200`.
struct TunnelUpstreamConnected: Sendable {}

import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin HTTP/1.1 server (docs/operations.md, "Admin API") on the host's event loops, through NIOHTTP1.
final class AdminServer: Sendable {
    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    static func start(host: String, port: Int, router: AdminRouter, group: EventLoopGroup) throws -> AdminServer {
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                // No descriptors left: pause accepting instead of spinning (see AcceptBackoff).
                channel.eventLoop.makeVoidFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { _ in AcceptBackoff.pause })
                }
            }
            .childChannelInitializer { channel in
                // withErrorHandling: a malformed request or oversized header block is answered
                // 400 and the connection closed, by NIOHTTP1's own protocol error handler.
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: AdminHTTPHandler.idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(router: router))
                }
            }
            .bind(host: host, port: port).wait()
        return AdminServer(channel: channel)
    }

    func close() { try? channel.close().wait() }
}

/// Collects one request (head and body), routes it, writes the answer.
///
/// A body over `maxBody` is answered 413 and nothing runs: the request is refused whole, never
/// cut and executed. A keep-alive connection that sends nothing for `idleTimeout` is closed, so
/// idle clients cannot pile up.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let router: AdminRouter
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    static let maxBody = 1 << 20
    static let idleTimeout = TimeAmount.seconds(60)

    init(router: AdminRouter) { self.router = router }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            let declared = h.headers["content-length"].first.flatMap { Int($0) } ?? 0
            tooLarge = declared > Self.maxBody
            if tooLarge { refuseTooLarge(context: context) }
        case .body(var chunk):
            guard !tooLarge else { return }
            if body.readableBytes + chunk.readableBytes <= Self.maxBody {
                body.writeBuffer(&chunk)
            } else {
                tooLarge = true
                body.clear()
                refuseTooLarge(context: context)
            }
        case .end:
            guard let head, !tooLarge else { return }
            self.head = nil
            let text = String(buffer: body)
            let keepAlive = head.isKeepAlive
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            router.route(method: head.method, uri: head.uri, authorization: head.headers["authorization"].first,
                         body: text, on: context.eventLoop).whenComplete { result in
                let response = (try? result.get()) ?? .error(.internalServerError, "internal error")
                Self.write(response, keepAlive: keepAlive, context: bound.value)
            }
        }
    }

    private static func write(_ response: AdminResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        for header in response.headers { headers.add(name: header.name, value: header.value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: done)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Answers 413 at once and closes after the answer: the rest of the body is not read.
    private func refuseTooLarge(context: ChannelHandlerContext) {
        head = nil
        let response = AdminResponse.error(.payloadTooLarge, "request body larger than \(Self.maxBody) bytes")
        Self.write(response, keepAlive: false, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

import Glibc
import NIOCore
import NIOPosix

/// A TCP echo service on SwiftNIO: every byte received is sent back; a half-close is answered
/// with a half-close once everything was echoed. The local upstream of the quick start, the
/// demo and the tests.
public final class EchoServer: Sendable {
    public let channel: Channel
    /// The bound port (useful when asked for port 0).
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: Channel) { self.channel = channel }

    /// What the server does with the bytes it receives.
    public enum Mode: String, Sendable, CaseIterable {
        /// Send every byte back.
        case echo
        /// Discard them (the far end of a bulk-throughput run).
        case sink
    }

    /// Listens on `host:port` (port 0: any free port). `sharingPort` sets SO_REUSEPORT, so that
    /// another socket of this user may hold the port while this one listens, and before and
    /// after (the tests stop and restart an upstream that way without ever freeing its port).
    public static func start(host: String = "127.0.0.1", port: Int = 0, mode: Mode = .echo, sharingPort: Bool = false,
                             group: EventLoopGroup) async throws -> EchoServer {
        try await bootstrap(mode: mode, group: group)
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: sharingPort ? 1 : 0)
            .bind(host: host, port: port).map(EchoServer.init).get()
    }

    /// `start` for synchronous callers (command-line tools).
    public static func startBlocking(host: String, port: Int, mode: Mode, group: EventLoopGroup) throws -> EchoServer {
        try bootstrap(mode: mode, group: group).bind(host: host, port: port).map(EchoServer.init).wait()
    }

    private static func bootstrap(mode: Mode, group: EventLoopGroup) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(mode == .echo ? EchoHandler() as ChannelHandler : SinkHandler())
                }
            }
    }

    public func stop() async {
        try? await channel.close()
    }
}

/// Discards what it reads; half-closes back when the client does.
final class SinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Echoes with backpressure: stops reading while the socket cannot take more.
final class EchoHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var readPending = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable { context.read() } else { readPending = true }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readPending {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // Shut the output only once every echoed byte is written: with the input closed
            // already, NIO turns an output close into a full close that drops pending writes.
            let drained = context.eventLoop.makePromise(of: Void.self)
            let channel = context.channel
            drained.futureResult.whenComplete { _ in channel.close(mode: .output, promise: nil) }
            context.writeAndFlush(NIOAny(ByteBuffer()), promise: drained)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

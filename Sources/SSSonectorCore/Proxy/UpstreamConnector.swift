import NIOCore
import NIOPosix
import StageABI

/// Opens upstream connections on a given event loop with the pipeline's socket options, and
/// turns connect errors into the ABI's outcomes.
enum UpstreamConnector {
    /// Connects to `target` on `loop` (the client's loop). IP literals skip name resolution; a
    /// reverse upstream opens a stream through `relay` to a connector, telling it `client`.
    static func connect(
        to target: UpstreamTarget, on loop: EventLoop, settings: ConnectionSettings,
        relay: RelayHub? = nil, client: SocketAddress? = nil,
        initializer: @escaping @Sendable (Channel) throws -> Void
    ) -> EventLoopFuture<Channel> {
        switch target {
        case .reverse(let service):
            ReverseStreamOpener.open(service: service, hub: relay, on: loop, settings: settings, client: client, initializer: initializer)
        case .literal(let address): bootstrap(settings, loop, initializer).connect(to: address)
        case .name(let endpoint): bootstrap(settings, loop, initializer).connect(host: endpoint.host, port: endpoint.port)
        case .invalid(let message): loop.makeFailedFuture(UpstreamAddressError(message: message))
        }
    }

    private static func bootstrap(
        _ settings: ConnectionSettings, _ loop: EventLoop, _ initializer: @escaping @Sendable (Channel) throws -> Void
    ) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(clamping: settings.connectTimeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeVoidFuture {
                    try SocketOptions.applyUpstream(settings, to: channel)
                    try initializer(channel)
                }
            }
    }

    /// Parses an upstream address once: a socket address for IP literals, else a name to resolve.
    static func target(for address: String) -> UpstreamTarget {
        if address.hasPrefix(UpstreamConfig.reversePrefix) { return .reverse(String(address.dropFirst(UpstreamConfig.reversePrefix.count))) }
        switch EndpointAddress.parse(address, allowPortZero: false) {
        case .failure(let problem): return .invalid(problem.message)
        case .success(let endpoint):
            if let literal = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port) { return .literal(literal) }
            return .name(endpoint)
        }
    }

    /// The ABI outcome and errno of a connect error.
    static func classify(_ error: Error) -> (UInt32, Int32) {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return (SSS_CONNECT_TIMEOUT, ETIMEDOUT)
        }
        if let io = error as? IOError { return (outcome(io.errnoCode), io.errnoCode) }
        if let many = error as? NIOConnectionError {
            if let first = many.connectionErrors.first { return classify(first.error) }
            if many.dnsAAAAError != nil || many.dnsAError != nil { return (SSS_CONNECT_UNREACHABLE, 0) }
        }
        if error is UpstreamAddressError { return (SSS_CONNECT_UNREACHABLE, 0) }
        if error is NoConnector || error is TunnelStreamRefused { return (SSS_CONNECT_REFUSED, ECONNREFUSED) }
        return (SSS_CONNECT_OTHER, 0)
    }

    private static func outcome(_ code: Int32) -> UInt32 {
        switch code {
        case ECONNREFUSED: SSS_CONNECT_REFUSED
        case ETIMEDOUT: SSS_CONNECT_TIMEOUT
        case ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL: SSS_CONNECT_UNREACHABLE
        case ECONNRESET, EPIPE: SSS_CONNECT_RESET
        default: SSS_CONNECT_OTHER
        }
    }

    /// Whether an I/O error means the peer reset the connection.
    static func isReset(_ error: Error) -> Bool {
        guard let io = error as? IOError else { return false }
        return io.errnoCode == ECONNRESET || io.errnoCode == EPIPE
    }
}

/// The name of the ABI outcome a connect or I/O error maps to ("refused", "timeout", "reset",
/// ...), for tools that count errors by kind (sssonector-bench).
public func connectOutcomeName(of error: Error) -> String {
    ABINames.connectOutcome(UpstreamConnector.classify(error).0)
}

/// Where to connect for one upstream, parsed once per upstream (not per connection).
enum UpstreamTarget: Sendable {
    case literal(SocketAddress)
    case name(EndpointAddress)
    /// A service reached through the relay's connectors (`reverse:SERVICE`).
    case reverse(String)
    case invalid(String)

    /// Whether the channel is a TCP socket (a reverse upstream's is a tunnel stream, or the
    /// socket pair that carries one to another loop).
    var isSocket: Bool {
        if case .reverse = self { return false }
        return true
    }
}

/// An upstream address that cannot be connected to as written.
struct UpstreamAddressError: Error {
    let message: String
}

/// TCP options both sides of a relayed connection get (`connection`, docs/pipeline-reference.md). They are set
/// synchronously in the channel initializer: bootstrap options are applied through a chain of
/// futures, one per option, which costs more than the system calls themselves.
enum SocketOptions {
    /// Options of the upstream socket: those of both sides, plus keepalive (an accepted socket
    /// inherits it from the listening socket; ClientBootstrap sets TCP_NODELAY itself).
    static func applyUpstream(_ s: ConnectionSettings, to channel: Channel) throws {
        try applyChannelOptions(to: channel)
        guard s.keepAlive else { return }
        let options = try syncOptions(of: channel)
        try options.setOption(.socketOption(.so_keepalive), value: 1)
        try options.setOption(keepIdle, value: keepIdleSeconds(s))
    }

    /// Options both sides set on their channel (NIO options, not inherited by accepted sockets).
    static func applyChannelOptions(to channel: Channel) throws {
        let options = try syncOptions(of: channel)
        try options.setOption(.allowRemoteHalfClosure, value: true)
        try options.setOption(.recvAllocator, value: receiveBuffers)
    }

    /// Receive buffer sizes: adaptive as NIO's default, but starting at 512 bytes instead of 2 KiB.
    /// A SwiftNIO channel keeps its last receive buffer for reuse, so the starting size is held
    /// by every idle connection on each side. Every read that fills the buffer doubles the
    /// next one, so a bulk transfer reaches 64 KiB after seven reads.
    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    private static func syncOptions(of channel: Channel) throws -> NIOSynchronousChannelOptions {
        guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
        return options
    }

    static let keepIdle = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_KEEPIDLE))

    static func keepIdleSeconds(_ s: ConnectionSettings) -> SocketOptionValue {
        SocketOptionValue(clamping: max(1, s.keepAliveIdle / 1_000_000_000))
    }
}

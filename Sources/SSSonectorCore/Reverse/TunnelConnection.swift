import NIOCore
import NIOHTTP2
import Synchronization

/// One registered connector connection, on the relay: the HTTP/2 connection its streams are
/// opened on, the identity it registered under, and how many streams it carries now.
final class TunnelConnection: Sendable {
    let channel: Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    let service: String
    /// The certificate name the service's `allow` list matched.
    let identity: String
    /// The connector's address as the relay sees it (`/stats`).
    let address: String
    private let streams = Atomic<Int>(0)

    init(channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, service: String, identity: String, address: String) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.service = service
        self.identity = identity
        self.address = address
    }

    var loop: EventLoop { channel.eventLoop }
    var openStreams: Int { streams.load(ordering: .relaxed) }

    func streamOpened() { streams.wrappingAdd(1, ordering: .relaxed) }
    func streamClosed() { streams.wrappingSubtract(1, ordering: .relaxed) }

    /// Tells the connector why it may not serve (GOAWAY's debug data) and closes the connection.
    func refuse(_ message: String) {
        Self.refuse(channel, message)
    }

    /// GOAWAY with `message` as debug data, then close: the connector logs the message and backs off long.
    static func refuse(_ channel: Channel, _ message: String) {
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .rootStream, errorCode: .refusedStream,
                                                                        opaqueData: ByteBuffer(string: message)))
        channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
    }
}

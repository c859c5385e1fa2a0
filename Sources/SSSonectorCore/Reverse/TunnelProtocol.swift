import NIOCore
import NIOHPACK
import NIOHTTP2

/// The reverse tunnel's wire protocol (docs/reverse-tunnel.md, "Protocol"): HTTP/2 with the roles
/// inverted, as Envoy's reverse tunnels do. The connector is the TLS client but the HTTP/2
/// *server*; the relay is the TLS server and the HTTP/2 *client*, so the relay opens the streams:
/// - one registration request per connection, `GET /.well-known/sssonector/register`, answered
///   `200` with `sssonector-service: NAME`; the relay checks the connector's certificate
///   identity against the service's `allow` list, and refuses with GOAWAY (its debug data says why);
/// - one `CONNECT` stream per client connection, `:authority` = the service name (never a host:port:
///   the connector dials only its own configured upstreams), `sssonector-client` = the client's
///   address; the connector answers `200` once its upstream is connected, `502` when it cannot be.
/// DATA carries the bytes, END_STREAM a half-close (FIN), RST_STREAM a reset.
enum TunnelProtocol {
    static let registerPath = "/.well-known/sssonector/register"
    static let serviceHeader = "sssonector-service"
    static let clientHeader = "sssonector-client"

    /// Per-stream receive window: 4 MiB carries about 330 Mbit/s per stream over a 100 ms link
    /// (window / RTT); frp's mux throughput complaints ended with a 6 MiB window.
    static let streamWindow = 4 << 20
    /// The connection's receive window, shared by its streams.
    static let connectionWindow = 16 << 20
    /// DATA frames up to 64 KiB: a relay read is one frame, not four.
    static let maxFrameSize = 1 << 16
    /// Streams a connector takes at once per connection (its pipeline's `max_connections` still applies).
    static let maxConcurrentStreams = 1 << 17
    /// Bytes a stream buffers for writing before it reports unwritable (the relay then stops
    /// reading the other side).
    static let streamWriteHighWatermark = 256 << 10

    /// Liveness: a PING every `pingInterval`; no answer for `pingTimeout` closes the connection.
    static let pingInterval = TimeAmount.seconds(10)
    static let pingTimeout = TimeAmount.seconds(30)
    /// How long a new connection may take to register before the relay closes it.
    static let registrationTimeout = TimeAmount.seconds(10)

    static var connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16 << 10),
        ]
        c.targetWindowSize = connectionWindow
        // Each relayed half-close is an empty DATA frame after an empty flush barrier.
        c.maximumSequentialEmptyDataFrames = 64
        return c
    }

    static var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var s = NIOHTTP2Handler.StreamConfiguration()
        s.targetWindowSize = streamWindow
        s.outboundBufferSizeHighWatermark = streamWriteHighWatermark
        s.outboundBufferSizeLowWatermark = streamWriteHighWatermark / 2
        return s
    }

    static func registrationRequest(relayName: String) -> HPACKHeaders {
        [":method": "GET", ":scheme": "https", ":path": registerPath, ":authority": relayName]
    }

    static func connectRequest(service: String, client: String?) -> HPACKHeaders {
        var headers: HPACKHeaders = [":method": "CONNECT", ":authority": service]
        if let client { headers.add(name: clientHeader, value: client) }
        return headers
    }
}

/// The connector answered a stream with something other than `200`, or the relay refused it.
struct TunnelStreamRefused: Error, CustomStringConvertible {
    let status: String
    var description: String { "the connector answered \(status)" }
}

/// No connector is registered for the service (the attempt fails like a refused connect).
struct NoConnector: Error, CustomStringConvertible {
    let service: String
    var description: String { "no connector serves \"\(service)\"" }
}

import NIOCore
import StageABI

/// A side of a relayed connection: the client that connected to the listener, or the upstream
/// the session connected to.
enum RelaySide {
    case client, upstream

    /// The direction this side's bytes travel (it is that direction's source).
    var outgoing: RelayDirection { self == .client ? .up : .down }
    /// The direction whose bytes this side receives (it is that direction's sink).
    var incoming: RelayDirection { self == .client ? .down : .up }
}

/// One direction of a relayed connection: `up` from client to upstream, `down` back. The
/// session's per-direction logic is written once, for a direction, and used for both.
enum RelayDirection: CaseIterable {
    case up, down

    /// The side the bytes come from.
    var source: RelaySide { self == .up ? .client : .upstream }
    /// The side the bytes go to.
    var sink: RelaySide { self == .up ? .upstream : .client }
    /// The pipe's place in `RelayPipes`.
    var index: Int { self == .up ? 0 : 1 }
    /// SSS_DIR_UP or SSS_DIR_DOWN, as stages see it.
    var abi: UInt32 { self == .up ? SSS_DIR_UP : SSS_DIR_DOWN }

    init?(abi: UInt32) {
        switch abi {
        case SSS_DIR_UP: self = .up
        case SSS_DIR_DOWN: self = .down
        default: return nil
        }
    }
}

/// What the session asks of a side's transport: the seam between the relay's logic
/// (`ProxySession`) and whatever moves the bytes (a SwiftNIO channel, `RelaySideHandler`; a
/// fake in the unit tests). Every call is made on the session's event loop.
///
/// Events flow the other way, from the transport to the session: `read`, `readComplete`,
/// `inputClosed`, `writabilityChanged`, `failed` and `inactive`.
protocol RelayEndpoint: AnyObject {
    /// Queues bytes for the peer (sent on the next `flush`).
    func write(_ chunk: ByteBuffer)
    /// Sends what `write` queued.
    func flush()
    /// Shuts the output (a FIN) once every byte written before has gone out. `done` gets nil
    /// then, or the error that kept the bytes from going out. With `thenClose`, the session
    /// closes the side as soon as `done` reports success (its input ended already), so a
    /// transport whose close sends that FIN itself may leave it to the close.
    func shutdownOutputAfterWrites(thenClose: Bool, _ done: @escaping (Error?) -> Void)
    /// Issues the read the session held back (backpressure); the transport reads on its own
    /// until the session holds back the next one.
    func resumeReading()
    /// Closes the side, both ways; pending writes are dropped.
    func close()
    /// Tells a connector's tunnel stream that the upstream is connected (the relay's CONNECT
    /// is answered then). Other transports ignore it.
    func upstreamConnected()
}

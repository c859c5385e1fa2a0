/// What the epoll path's zero-copy transfer asks of the session (`SocketEndpoint`, splice).
extension ProxySession {
    /// The socket `side`'s bytes may go to in the kernel now, skipping the session: the
    /// session relays, may read `side`, no stage inspects that direction, and the sink is a
    /// socket of this path with nothing queued (what was written before is in the kernel, so
    /// the order holds). Nil otherwise: the bytes then come through `read` as usual.
    func spliceSink(from side: RelaySide) -> SocketEndpoint? {
        let direction = side.outgoing
        guard mayRead(side), !pipes[direction].inspected,
              let sink = endpoint(direction.sink) as? SocketEndpoint, sink.queuedBytes == 0 else { return nil }
        return sink
    }

    /// `count` bytes from `side` reached the other side's socket in the kernel.
    func spliced(_ side: RelaySide, count: Int) {
        pipes[side.outgoing].passThrough(count: count)
    }
}

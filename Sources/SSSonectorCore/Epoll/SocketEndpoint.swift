import CEpoll
import Glibc
import NIOCore

/// One side of a relayed connection on the epoll data path: a plain TCP socket the relay owns
/// from `accept` (or `connect`) to `close`, with no SwiftNIO channel. It is that side's
/// `RelayEndpoint` for the session, and, for an upstream, the connect attempt too.
///
/// Reads land in the loop's one receive buffer and go to the session as they are; a chunk the
/// session passes straight on is sent with one `send` and the buffer is free again, so a relayed
/// request allocates nothing. Writes go to the kernel at once; what it does not take waits here,
/// in order, until the socket is writable again (the session hears of it through the same
/// writability events as from a channel: above 64 KiB queued, not writable; below 32 KiB,
/// writable again, SwiftNIO's default watermarks). Confined to its loop.
final class SocketEndpoint: RelayEndpoint, EpollSource, UpstreamAttempt, EpollTimerTarget {
    let fd: CInt
    private let side: RelaySide
    let loop: EpollLoop
    /// Nil once closed (breaks the cycle: the session holds this endpoint).
    private var session: ProxySession?
    private var registration = -1
    private var closed = false
    /// An edge said there is input (or an EOF or error) that was not read to the end yet.
    private var readable = false
    /// The peer half-closed (or the socket hung up): the input ends with an EOF still to read,
    /// so a short read does not mean the socket is drained.
    private var hangup = false
    private var inputEnded = false
    /// Bytes the kernel did not take yet, oldest first (created on first need).
    private var pending: CircularBuffer<ByteBuffer>?
    private var pendingBytes = 0
    private var writable = true
    /// Runs once every pending byte is out: the output is then shut (`shutdownOutputAfterWrites`).
    private var afterWrites: ((Error?) -> Void)?
    /// The session closes this socket right after its FIN, so the close sends it.
    private var finAtClose = false
    /// A write failed; reported from the loop, not from inside the session's own call.
    private var writeError: Int32 = 0
    /// Zero-copy (splice) for a direction no stage inspects, once a read filled the receive
    /// buffer: bytes go socket -> pipe -> socket in the kernel, as HAProxy's `splice-auto`
    /// does above 4 KiB. The pipe (made on first use) and the bytes in it, which always go out
    /// before anything is read again.
    private var bulk = false
    private var pipe: (read: CInt, write: CInt)?
    private var inPipe = 0
    /// The source whose piped bytes wait for this socket to take them (this is its sink).
    private var waitingSource: SocketEndpoint?
    /// At most this much is moved into the pipe per call (its default capacity).
    static let spliceChunk = 64 * 1024
    private static let spliceFlags: UInt32 = 1 | 2  // SPLICE_F_MOVE | SPLICE_F_NONBLOCK

    /// While connecting (an upstream, `SocketEndpoint+Connect.swift`): the session's
    /// completion, the loop's timer for `connect_timeout` (-1: none) and its length.
    var connecting: ((Result<DialedUpstream, Error>) -> Void)?
    var connectTimer = -1
    var connectTimeout: UInt64 = 0

    static let highWatermark = 64 * 1024
    static let lowWatermark = 32 * 1024
    /// Reads per event before the loop serves other sockets (they go on from `later`).
    static let readsPerEvent = 16

    /// An accepted (or connected) socket for `side` of `session`; `attach` registers it.
    init(fd: CInt, side: RelaySide, session: ProxySession, loop: EpollLoop) {
        self.fd = fd
        self.side = side
        self.session = session
        self.loop = loop
    }

    /// Starts watching the socket. Throws (and closes the socket) when the loop cannot.
    func attach() throws {
        do {
            registration = try loop.register(fd, self)
        } catch {
            closed = true
            session = nil
            Glibc.close(fd)
            throw error
        }
    }

    // MARK: events, from the loop

    func ready(_ events: UInt32) {
        guard !closed else { return }
        if connecting != nil {
            guard events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            // A failed connect raises EPOLLERR (and EPOLLHUP); EPOLLOUT alone means connected,
            // so only a failure pays for the `getsockopt` that names its error.
            if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                let code = Self.socketError(fd)
                if code != 0 { return connectFailed(IOError(errnoCode: code, reason: "connect")) }
            }
            connected()
            guard !closed else { return }
        }
        if writeError != 0 { return fail(writeError, "send") }
        if events & EPOLLERR.rawValue != 0, !readable || inputEnded {
            let code = Self.socketError(fd)
            if code != 0 { return fail(code, "socket") }
        }
        if events & EPOLLOUT.rawValue != 0, pendingBytes > 0 {
            sendPending()
            guard !closed else { return }
        }
        if events & EPOLLOUT.rawValue != 0, let source = waitingSource {
            waitingSource = nil
            source.ready(0)  // its piped bytes can go on
            guard !closed else { return }
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readable = true }
        if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { hangup = true }
        if (readable && !inputEnded) || inPipe > 0 { readSome() }
    }

    /// Reads while the session may take bytes, up to `readsPerEvent` reads; a short read means
    /// the socket is drained (no `recv` only to hear EAGAIN, as HAProxy does).
    private func readSome() {
        guard let session else { return }
        if bulk || inPipe > 0 {
            if let sink = session.spliceSink(from: side) { return spliceSome(to: sink, session) }
            if inPipe > 0 {
                // The session holds this side back: the piped bytes wait with the rest, and go
                // first when it lets it read again (`resumeReading`).
                if !session.mayRead(side) { session.readSuppressed(side) }
                return
            }
        }
        var reads = 0
        reading: while readable {
            guard session.mayRead(side) else {
                session.readSuppressed(side)  // readable stays set: `resumeReading` goes on
                break
            }
            guard reads < Self.readsPerEvent else {
                loop.later(self)
                break
            }
            reads += 1
            loop.receiveBuffer.clear()
            let capacity = loop.receiveBuffer.writableBytes
            let count = loop.receiveBuffer.withUnsafeMutableWritableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                loop.receiveBuffer.moveWriterIndex(forwardBy: count)
                if count < capacity && !hangup { readable = false }
                session.read(side, loop.receiveBuffer)
                if closed { return }
                if count == capacity && !bulk {
                    bulk = true  // a bulk transfer: from the next read on, through the kernel when allowed
                    session.readComplete(side)
                    if closed { return }
                    return readSome()
                }
                continue
            }
            switch readStopped(count, "recv", session, owesReadComplete: true) {
            case .retry: continue
            case .drained: break reading
            case .done: return
            }
        }
        if reads > 0 && !closed { session.readComplete(side) }
    }

    private enum ReadStop { case retry, drained, done }

    /// What a read (`recv` or `splice`) that returned `count` <= 0 means: the end of the input
    /// (told to the session, after the `readComplete` it is owed), a retry after a signal, a
    /// drained socket, or an error (told to the session). Reads errno first.
    private func readStopped(_ count: Int, _ call: String, _ session: ProxySession, owesReadComplete: Bool) -> ReadStop {
        guard count == 0 else {
            let code = errno
            if code == EINTR { return .retry }
            if code == EAGAIN || code == EWOULDBLOCK {
                readable = false
                return .drained
            }
            fail(code, call)
            return .done
        }
        readable = false
        inputEnded = true
        if owesReadComplete { session.readComplete(side) }
        if !closed { session.inputClosed(side) }
        return .done
    }

    /// Moves bytes to `sink` through the pipe: first what the pipe holds, then from the socket,
    /// until the socket is drained, the sink is full (it calls back on its next EPOLLOUT), or
    /// `readsPerEvent` transfers. The session counts them as passed through.
    private func spliceSome(to sink: SocketEndpoint, _ session: ProxySession) {
        guard let pipe = pipe ?? makePipe() else {
            bulk = false  // no pipe to be had (descriptors): copy as before
            return readSome()
        }
        waitsForSink = false
        var transfers = 0
        var moved = false
        defer { if moved && !closed { session.readComplete(side) } }
        while true {
            if inPipe > 0 {
                let out = splice(pipe.read, nil, sink.fd, nil, UInt(inPipe), Self.spliceFlags)
                if out > 0 {
                    inPipe -= out
                    moved = true
                    session.spliced(side, count: out)
                    if closed { return }
                    continue
                }
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    sink.waitingSource = self
                    waitsForSink = true
                    return
                }
                session.failed(side == .client ? .upstream : .client, IOError(errnoCode: code, reason: "splice"))
                return
            }
            guard readable, !inputEnded else { return }
            guard session.mayRead(side) else { return session.readSuppressed(side) }
            guard transfers < Self.readsPerEvent else { return loop.later(self) }
            transfers += 1
            let taken = splice(fd, nil, pipe.write, nil, UInt(Self.spliceChunk), Self.spliceFlags)
            if taken > 0 {
                inPipe = taken
                if taken < Self.spliceChunk && !hangup { readable = false }
                continue
            }
            let owed = moved
            moved = false  // told here, not again when this returns
            switch readStopped(taken, "splice", session, owesReadComplete: owed) {
            case .retry: moved = owed
            case .drained, .done: return
            }
        }
    }

    private func makePipe() -> (read: CInt, write: CInt)? {
        var fds: [CInt] = [0, 0]
        guard pipe2(&fds, O_NONBLOCK | O_CLOEXEC) == 0 else { return nil }
        pipe = (fds[0], fds[1])
        return pipe
    }

    private func fail(_ code: Int32, _ call: String) {
        guard let session else { return }
        session.failed(side, IOError(errnoCode: code, reason: call))
        if !closed { close() }
    }

    private static func socketError(_ fd: CInt) -> Int32 {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return errno }
        return code
    }

    // MARK: RelayEndpoint, from the session

    func write(_ chunk: ByteBuffer) {
        guard !closed, writeError == 0 else { return }
        guard pendingBytes == 0 else { return enqueue(chunk) }
        let count = chunk.readableBytes
        let sent = chunk.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
        if sent == count { return }
        if sent < 0 {
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else { return writeFailed(code) }
            return enqueue(chunk)
        }
        var rest = chunk
        rest.moveReaderIndex(forwardBy: sent)
        enqueue(rest)
    }

    /// Keeps what the kernel did not take. A small rest of a large buffer (the loop's receive
    /// buffer) is copied, so a slow peer holds its bytes, not 64 KiB per chunk.
    private func enqueue(_ chunk: ByteBuffer) {
        var kept = chunk
        if kept.readableBytes * 4 < kept.capacity {
            kept = ByteBufferAllocator().buffer(capacity: chunk.readableBytes)
            kept.writeImmutableBuffer(chunk)
        }
        if pending == nil { pending = CircularBuffer(initialCapacity: 4) }
        pending?.append(kept)
        pendingBytes += kept.readableBytes
        if writable && pendingBytes > Self.highWatermark {
            writable = false
            session?.writabilityChanged(side, writable: false)
        }
    }

    private func writeFailed(_ code: Int32) {
        writeError = code
        pending = nil
        pendingBytes = 0
        loop.later(self)  // reported from the loop: the session is inside its own call now
    }

    /// Sends queued bytes until the kernel takes no more.
    private func sendPending() {
        while let first = pending?.first {
            let count = first.readableBytes
            let sent = first.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return }
                return fail(code, "send")
            }
            pendingBytes -= sent
            if sent == count {
                pending?.removeFirst()
            } else {
                if let head = pending?.startIndex { pending?[head].moveReaderIndex(forwardBy: sent) }
                return
            }
        }
        if !writable && pendingBytes < Self.lowWatermark {
            writable = true
            session?.writabilityChanged(side, writable: true)
            if closed { return }
        }
        if pendingBytes == 0, let done = afterWrites {
            afterWrites = nil
            shutdownOutput(done)
        }
    }

    /// Bytes waiting for the kernel to take them.
    var queuedBytes: Int { pendingBytes }
    /// Bytes read from this socket into its pipe, not yet taken by the other side's.
    var pipedBytes: Int { inPipe }
    /// Piped bytes wait for the other side's socket to take more.
    var waitsForSink = false

    /// Every byte goes out at once or waits in `pending`: nothing to flush.
    func flush() {}

    func shutdownOutputAfterWrites(thenClose: Bool, _ done: @escaping (Error?) -> Void) {
        guard !closed else { return done(IOError(errnoCode: EBADF, reason: "shutdown")) }
        finAtClose = thenClose
        if pendingBytes == 0 { return shutdownOutput(done) }
        afterWrites = done
    }

    /// With `finAtClose`, no `shutdown`: the close that follows sends the same FIN (the input
    /// ended, so nothing unread turns it into a reset), one system call fewer per connection.
    private func shutdownOutput(_ done: (Error?) -> Void) {
        if finAtClose || Glibc.shutdown(fd, Int32(SHUT_WR)) == 0 { return done(nil) }
        done(IOError(errnoCode: errno, reason: "shutdown"))
    }

    func resumeReading() {
        if (readable || inPipe > 0) && !closed { loop.later(self) }
    }

    func close() {
        guard !closed else { return }
        closed = true
        session = nil
        pending = nil
        pendingBytes = 0
        afterWrites = nil
        waitingSource = nil
        if let pipe {
            Glibc.close(pipe.read)
            Glibc.close(pipe.write)
            self.pipe = nil
        }
        if registration >= 0 { loop.deregister(registration, fd: nil) }
        Glibc.close(fd)
    }

    func upstreamConnected() {}
}

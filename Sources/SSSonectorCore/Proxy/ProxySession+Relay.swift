import NIOCore
import NIOSSL
import StageABI

/// The relay itself: each direction's bytes from its source to its sink, through the stages
/// that inspect it, with backpressure and the half-close carried across. Every method is
/// written once, for a direction (or a side), and serves both.
extension ProxySession {
    // MARK: bytes

    /// Whether the side may read now (its outgoing pipe is relaying and has room).
    func mayRead(_ side: RelaySide) -> Bool {
        state == .relaying && pipes[side.outgoing].mayRead(limit: settings.bufferLimit)
    }

    /// The side's transport held a read back (`mayRead` said no): issued again by `resumeReading`.
    func readSuppressed(_ side: RelaySide) {
        pipes[side.outgoing].readSuppressed = true
    }

    /// Bytes from a side. Each statement ends its access to the pipe before a write: a write
    /// may re-enter the session (writability changes).
    func read(_ side: RelaySide, _ buffer: ByteBuffer) {
        let direction = side.outgoing
        guard state == .relaying else {
            // Bytes decrypted together with the last TLS handshake message can arrive before
            // the upstream is connected: keep them; they go out when relaying starts.
            if state != .closed { pipes[direction].hold(buffer) }
            return
        }
        if pipes[direction].inspected {
            pipes[direction].hold(buffer)
            offer(direction, reoffer: false)
        } else {
            pipes[direction].passThrough(buffer)
            endpoint(direction.sink)?.write(buffer)
        }
    }

    /// The end of a read burst: notes the activity once per burst (one clock read, not one
    /// per chunk) and flushes what the burst wrote.
    func readComplete(_ side: RelaySide) {
        if state == .relaying { lastActivityAt = now }
        flush(side.outgoing)
    }

    /// Flushes a direction's sink. A flush (like a write) may re-enter this session
    /// synchronously (writability changes), so no access to a pipe spans the call.
    func flush(_ direction: RelayDirection) {
        guard pipes[direction].unflushed else { return }
        pipes[direction].unflushed = false
        endpoint(direction.sink)?.flush()
    }

    /// Writes what the stages released, a chunk at a time (no access to the pipe spans a write).
    private func writeReleased(_ direction: RelayDirection) {
        while let chunk = pipes[direction].nextReleasedChunk() { endpoint(direction.sink)?.write(chunk) }
    }

    /// Sends what arrived before relaying started (see `read`).
    func releaseEarlyBytes() {
        for direction in RelayDirection.allCases where pipes[direction].heldBytes > 0 {
            if pipes[direction].inspected {
                offer(direction, reoffer: false)
            } else {
                pipes[direction].released = pipes[direction].received
                writeReleased(direction)
            }
            flush(direction)
        }
    }

    /// Offers a direction's held bytes to its stages and writes what they release.
    private func offer(_ direction: RelayDirection, reoffer: Bool) {
        guard state == .relaying else { return }
        // Fields one by one: a copy of the whole pipe would retain its held chunks.
        let received = pipes[direction].received
        let eof = pipes[direction].eof != .open
        let buffered = pipes[direction].heldBytes
        let grant: ConnectionChain.Grant
        if chain.wantsSlices {
            // Views of the held chunks only when a stage asked for payload.
            let slices = HeldBytesSlices(held: pipes[direction].held ?? [], base: pipes[direction].written)
            grant = chain.offer(direction: direction.abi, received: received, eof: eof, buffered: buffered, now: now,
                                reoffer: reoffer, slices: slices)
        } else {
            grant = chain.offer(direction: direction.abi, received: received, eof: eof, buffered: buffered, now: now,
                                reoffer: reoffer)
        }
        if let reason = grant.closeReason {
            reasonCode = reason
            finish(SSS_CLOSE_STAGE_CLOSED)
            return
        }
        pipes[direction].released = grant.releasedUpTo
        writeReleased(direction)
        if grant.retryAfter > 0 { armReoffer(direction, after: grant.retryAfter) }
        maybeForwardEOF(direction)
    }

    private func armReoffer(_ direction: RelayDirection, after delay: UInt64) {
        guard pipes[direction].reofferTimer == nil, state == .relaying else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        pipes[direction].reofferTimer = loop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) {
            bound.value.pipes[direction].reofferTimer = nil
            bound.value.resume(direction)
        }
    }

    /// A stage posted a resume (`conn_post_resume`) for an ABI direction.
    func resume(abiDirection: UInt32) {
        guard let direction = RelayDirection(abi: abiDirection) else { return }
        resume(direction)
    }

    /// Offers held bytes again (a timer fired, or a stage posted a resume), flushes, and lets
    /// the source read again when there is room.
    func resume(_ direction: RelayDirection) {
        guard state == .relaying else { return }
        offer(direction, reoffer: true)
        flush(direction)
        resumeReading(direction.source)
    }

    /// Issues a suppressed read on `side` if it may read now.
    func resumeReading(_ side: RelaySide) {
        guard mayRead(side), pipes[side.outgoing].readSuppressed else { return }
        pipes[side.outgoing].readSuppressed = false
        endpoint(side)?.resumeReading()
    }

    /// The side's transport became writable or unwritable; once writable again, the other
    /// side may read.
    func writabilityChanged(_ side: RelaySide, writable: Bool) {
        pipes[side.incoming].sinkWritable = writable
        if writable { resumeReading(side.incoming.source) }
    }

    // MARK: end of stream

    /// The side half-closed its output (FIN).
    func inputClosed(_ side: RelaySide) {
        lastActivityAt = now
        let direction = side.outgoing
        if pipes[direction].eof == .open { pipes[direction].eof = .received }
        if firstEOF == nil { firstEOF = side.eofCause }
        if state == .relaying, pipes[direction].inspected { offer(direction, reoffer: false) } else { maybeForwardEOF(direction) }
    }

    /// Passes a half-close on once every byte before it has been written.
    func maybeForwardEOF(_ direction: RelayDirection) {
        guard state == .relaying, pipes[direction].readyToForwardEOF else { return }
        pipes[direction].eof = .forwarding
        pipes[direction].unflushed = false
        // The sink's own input ended already: once this FIN is out, both directions are done.
        let thenClose = pipes[direction.sink.outgoing].eof == .delivered
        endpoint(direction.sink)?.shutdownOutputAfterWrites(thenClose: thenClose) { [self] error in eofDrained(direction, error) }
    }

    private func eofDrained(_ direction: RelayDirection, _ error: Error?) {
        guard state == .relaying else { return }
        if let error { return failed(direction.sink, error) }
        pipes[direction].eof = .delivered
        // Done when both directions ended, or when this direction's source has closed entirely.
        if (pipes[.up].eof == .delivered && pipes[.down].eof == .delivered) || pipes[direction].sourceClosed {
            finish(firstEOF ?? SSS_CLOSE_CLIENT_EOF)
        }
    }

    // MARK: errors and closes

    func failed(_ side: RelaySide, _ error: Error) {
        guard state != .closed else { return }
        if side == .upstream && state == .connecting { return }  // a failed attempt, the dialer's to report
        if side == .client, state == .opening { return clientHandshakeFailed(error) }
        // A TLS peer that closes TCP without close_notify after its data: treated as its EOF,
        // as HAProxy and nginx do (the bytes before it were authenticated).
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls, state == .relaying {
            return inputClosed(side)
        }
        pipeline.logger.debug("connection error", metadata: ["connection": "\(id)", "side": "\(side)", "error": "\(error)"])
        finish(UpstreamConnector.isReset(error) ? side.resetCause : SSS_CLOSE_ERROR)
    }

    /// A side's transport closed. A reset arrives as an error first (`failed`). Without one,
    /// the close is orderly: the side sent its FIN (NIO closes the channel on EOF without an
    /// `inputClosed` event once our output to it is shut already). Finish once its bytes have
    /// reached the other side.
    func inactive(_ side: RelaySide) {
        guard state != .closed else { return }
        if side == .upstream && state == .connecting { return }  // a failed attempt, the dialer's to report
        if side == .client && state == .opening { return clientHandshakeFailed(ChannelError.eof) }
        // The client left while a stage decided: the stages hear it once, in on_close.
        if side == .client && state == .admitting { return finish(pipes[.up].eof != .open ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_CLIENT_RESET) }
        let direction = side.outgoing
        let orderly = pipes[direction].eof != .open || pipes[side.incoming].eof >= .forwarding
        guard orderly, state == .relaying else { return finish(side.resetCause) }
        pipes[direction].sourceClosed = true
        if pipes[direction].eof == .open { inputClosed(side) }
        if pipes[direction].eof == .delivered { finish(firstEOF ?? side.eofCause) }
    }
}

extension RelaySide {
    /// The close cause when this side ends the connection with a FIN.
    var eofCause: UInt32 { self == .client ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_UPSTREAM_EOF }
    /// The close cause when this side resets the connection.
    var resetCause: UInt32 { self == .client ? SSS_CLOSE_CLIENT_RESET : SSS_CLOSE_UPSTREAM_RESET }
}

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
        state == .relaying && self[pipe: side.outgoing].mayRead(limit: settings.bufferLimit)
    }

    /// The side's transport held a read back (`mayRead` said no): issued again by `resumeReading`.
    func readSuppressed(_ side: RelaySide) {
        self[pipe: side.outgoing].readSuppressed = true
    }

    /// Bytes from a side. Each statement ends its access to the pipe before a write: a write
    /// may re-enter the session (writability changes).
    func read(_ side: RelaySide, _ buffer: ByteBuffer) {
        let direction = side.outgoing
        guard state == .relaying else {
            // Bytes decrypted together with the last TLS handshake message can arrive before
            // the upstream is connected: keep them; they go out when relaying starts.
            if state != .closed { self[pipe: direction].hold(buffer) }
            return
        }
        if self[pipe: direction].inspected {
            self[pipe: direction].hold(buffer)
            offer(direction, reoffer: false)
        } else {
            self[pipe: direction].passThrough(buffer)
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
        guard self[pipe: direction].unflushed else { return }
        self[pipe: direction].unflushed = false
        endpoint(direction.sink)?.flush()
    }

    /// Writes what the stages released, a chunk at a time (no access to the pipe spans a write).
    private func writeReleased(_ direction: RelayDirection) {
        while let chunk = self[pipe: direction].nextReleasedChunk() { endpoint(direction.sink)?.write(chunk) }
    }

    /// Sends what arrived before relaying started (see `read`).
    func releaseEarlyBytes() {
        for direction in RelayDirection.allCases where self[pipe: direction].heldBytes > 0 {
            if self[pipe: direction].inspected {
                offer(direction, reoffer: false)
            } else {
                self[pipe: direction].released = self[pipe: direction].received
                writeReleased(direction)
            }
            flush(direction)
        }
    }

    /// Offers a direction's held bytes to its stages and writes what they release.
    private func offer(_ direction: RelayDirection, reoffer: Bool) {
        guard state == .relaying else { return }
        // Fields one by one: a copy of the whole pipe would retain its held chunks.
        let received = self[pipe: direction].received
        let eof = self[pipe: direction].eof != .open
        let buffered = self[pipe: direction].heldBytes
        let grant: ConnectionChain.Grant
        if chain.wantsSlices {
            // Views of the held chunks only when a stage asked for payload.
            let slices = HeldBytesSlices(held: self[pipe: direction].held ?? [], base: self[pipe: direction].written)
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
        self[pipe: direction].released = grant.releasedUpTo
        writeReleased(direction)
        if grant.retryAfter > 0 { armReoffer(direction, after: grant.retryAfter) }
        maybeForwardEOF(direction)
    }

    private func armReoffer(_ direction: RelayDirection, after delay: UInt64) {
        guard self[pipe: direction].reofferTimer == nil, state == .relaying else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        self[pipe: direction].reofferTimer = loop.scheduleTask(in: .nanoseconds(Int64(clamping: delay))) {
            bound.value[pipe: direction].reofferTimer = nil
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
        guard mayRead(side), self[pipe: side.outgoing].readSuppressed else { return }
        self[pipe: side.outgoing].readSuppressed = false
        endpoint(side)?.resumeReading()
    }

    /// The side's transport became writable or unwritable; once writable again, the other
    /// side may read.
    func writabilityChanged(_ side: RelaySide, writable: Bool) {
        self[pipe: side.incoming].sinkWritable = writable
        if writable { resumeReading(side.incoming.source) }
    }

    // MARK: end of stream

    /// The side half-closed its output (FIN).
    func inputClosed(_ side: RelaySide) {
        lastActivityAt = now
        let direction = side.outgoing
        if self[pipe: direction].eof == .open { self[pipe: direction].eof = .received }
        if firstEOF == nil { firstEOF = side.eofCause }
        if state == .relaying, self[pipe: direction].inspected { offer(direction, reoffer: false) } else { maybeForwardEOF(direction) }
    }

    /// Passes a half-close on once every byte before it has been written.
    func maybeForwardEOF(_ direction: RelayDirection) {
        guard state == .relaying, self[pipe: direction].readyToForwardEOF else { return }
        self[pipe: direction].eof = .forwarding
        self[pipe: direction].unflushed = false
        endpoint(direction.sink)?.shutdownOutputAfterWrites { [self] error in eofDrained(direction, error) }
    }

    private func eofDrained(_ direction: RelayDirection, _ error: Error?) {
        guard state == .relaying else { return }
        if let error { return failed(direction.sink, error) }
        self[pipe: direction].eof = .delivered
        // Done when both directions ended, or when this direction's source has closed entirely.
        if (up.eof == .delivered && down.eof == .delivered) || self[pipe: direction].sourceClosed {
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
        if side == .client && state == .admitting { return finish(up.eof != .open ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_CLIENT_RESET) }
        let direction = side.outgoing
        let orderly = self[pipe: direction].eof != .open || self[pipe: side.incoming].eof >= .forwarding
        guard orderly, state == .relaying else { return finish(side.resetCause) }
        self[pipe: direction].sourceClosed = true
        if self[pipe: direction].eof == .open { inputClosed(side) }
        if self[pipe: direction].eof == .delivered { finish(firstEOF ?? side.eofCause) }
    }
}

extension RelaySide {
    /// The close cause when this side ends the connection with a FIN.
    var eofCause: UInt32 { self == .client ? SSS_CLOSE_CLIENT_EOF : SSS_CLOSE_UPSTREAM_EOF }
    /// The close cause when this side resets the connection.
    var resetCause: UInt32 { self == .client ? SSS_CLOSE_CLIENT_RESET : SSS_CLOSE_UPSTREAM_RESET }
}

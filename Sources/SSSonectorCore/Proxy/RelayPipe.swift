import NIOCore
import StageABI

/// One direction of a relayed connection (client → upstream, or back): what was read, what
/// the stages released, what was written, and the bytes held in between.
///
/// Offsets are stream positions: `written <= released <= received`. Bytes in
/// [written, received) sit in `held` as the `ByteBuffer`s they arrived in (no copy); a
/// direction no stage inspects never holds anything: each chunk is written as it is read.
///
/// Noncopyable: it lives in `RelayPipes` and is only ever read and changed in place (a copy
/// would retain its held chunks and timer on every access of the hot path).
struct RelayPipe: ~Copyable {
    /// How far a direction's end of stream has gone, in the order it goes: the source's FIN
    /// arrives, the session asks the sink to shut its output once every byte before the FIN is
    /// out, and the sink's output is shut. One state, so no combination of flags can disagree.
    enum EOFProgress: Int, Comparable {
        /// No FIN from the source yet.
        case open
        /// The source sent its FIN; bytes before it may still be held or in flight.
        case received
        /// Every byte was written; the sink's output is being shut after them.
        case forwarding
        /// The sink's output is shut: this direction is over.
        case delivered

        static func < (a: EOFProgress, b: EOFProgress) -> Bool { a.rawValue < b.rawValue }
    }

    let direction: RelayDirection
    /// Whether any entered stage inspects this direction (data events).
    var inspected = false
    var received: UInt64 = 0
    var released: UInt64 = 0
    var written: UInt64 = 0
    /// Chunks read but not yet written, oldest first; `heldBytes` = received - written.
    /// Created by the first `hold`: a direction no stage inspects never allocates it (an empty
    /// CircularBuffer still allocates storage).
    var held: CircularBuffer<ByteBuffer>?
    var eof = EOFProgress.open
    /// The source's channel closed after its FIN (an orderly close, not a reset): nothing more
    /// can come from it, either way.
    var sourceClosed = false
    /// Whether the sink takes more writes: its transport's writability, mirrored from its
    /// events, so the check before every read does not go through the transport.
    var sinkWritable = true
    /// A read was suppressed and must be issued when the pipe can take bytes again.
    var readSuppressed = false
    /// A stage asked for a re-offer; the timer is armed.
    var reofferTimer: Scheduled<Void>?
    /// Bytes written since the last flush.
    var unflushed = false

    init(direction: RelayDirection) { self.direction = direction }

    var heldBytes: UInt64 { received &- written }

    /// Whether the pipe should read more: the sink is writable, the held bytes are below the
    /// limit and the source has not ended.
    func mayRead(limit: UInt64) -> Bool {
        sinkWritable && heldBytes < limit && eof == .open
    }

    /// Every byte the source sent before its FIN has been written to the sink.
    var readyToForwardEOF: Bool { eof == .received && written == received }

    /// The fast path (no stage inspects this direction): the chunk is written as it came.
    mutating func passThrough(_ buffer: ByteBuffer) {
        passThrough(count: buffer.readableBytes)
        unflushed = true
    }

    /// Bytes the transport moved to the sink itself (the epoll path's splice): passed through,
    /// with nothing to flush.
    mutating func passThrough(count: Int) {
        received &+= UInt64(count)
        released = received
        written = received
    }

    /// Keeps a chunk until the stages release it.
    mutating func hold(_ buffer: ByteBuffer) {
        received &+= UInt64(buffer.readableBytes)
        if held == nil { held = CircularBuffer(initialCapacity: 4) }
        held?.append(buffer)
    }

    /// The next held bytes up to `released`, removed from the pipe: a whole chunk, or a
    /// slice of one (same storage, no copy) when the release point falls inside it.
    mutating func nextReleasedChunk() -> ByteBuffer? {
        guard written < released, var first = held?.first else { return nil }
        let want = released - written
        unflushed = true
        if UInt64(first.readableBytes) <= want {
            held?.removeFirst()
            written += UInt64(first.readableBytes)
            return first
        }
        guard let part = first.readSlice(length: Int(want)) else { return nil }
        if let start = held?.startIndex { held?[start] = first }
        written += want
        return part
    }
}

/// The two pipes of a connection in one allocation, reached in place by direction
/// (`pipes[.up].written += n`). Addressors, because a subscript that switches between two
/// stored properties needs `_read`/`_modify` coroutines, which the optimizer left out of line
/// and which copied the whole pipe on each access: 1,700 instructions per relayed request.
struct RelayPipes {
    private let base: UnsafeMutablePointer<RelayPipe>

    init() {
        base = .allocate(capacity: 2)
        (base + 0).initialize(to: RelayPipe(direction: .up))
        (base + 1).initialize(to: RelayPipe(direction: .down))
    }

    subscript(direction: RelayDirection) -> RelayPipe {
        unsafeAddress { UnsafePointer(base + direction.index) }
        nonmutating unsafeMutableAddress { base + direction.index }
    }

    /// Frees the pipes (their owner's deinit; nothing may use them after).
    func deallocate() {
        base.deinitialize(count: 2)
        base.deallocate()
    }
}

/// Views of a pipe's held bytes for stages that asked for payload slices.
struct HeldBytesSlices: DataSliceSource {
    let held: CircularBuffer<ByteBuffer>
    /// Stream offset of the first held byte.
    let base: UInt64

    func withSlices(offset: UInt64, count: UInt64, _ body: (UnsafeBufferPointer<sss_slice>) -> UInt32) -> UInt32 {
        var skip = offset &- base
        var remaining = count
        var parts: [(ByteBuffer, Int, Int)] = []
        for chunk in held where remaining > 0 {
            let size = UInt64(chunk.readableBytes)
            if skip >= size { skip -= size; continue }
            let take = min(size - skip, remaining)
            parts.append((chunk, Int(skip), Int(take)))
            remaining -= take
            skip = 0
        }
        return Self.collect(parts[...], into: []) { body($0) }
    }

    /// Nests `withUnsafeReadableBytes` so every pointer stays valid while `body` runs.
    private static func collect(
        _ parts: ArraySlice<(ByteBuffer, Int, Int)>, into slices: [sss_slice],
        _ body: (UnsafeBufferPointer<sss_slice>) -> UInt32
    ) -> UInt32 {
        guard let (chunk, start, length) = parts.first else {
            return slices.withUnsafeBufferPointer(body)
        }
        return chunk.withUnsafeReadableBytes { raw in
            let base = raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self)
            return collect(parts.dropFirst(), into: slices + [sss_slice(ptr: base, len: UInt64(length))], body)
        }
    }
}

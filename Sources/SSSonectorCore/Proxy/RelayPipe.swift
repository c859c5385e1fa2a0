import NIOCore
import StageABI

/// One direction of a relayed connection (client → upstream, or back): what was read, what
/// the stages released, what was written, and the bytes held in between.
///
/// Offsets are stream positions: `written <= released <= received`. Bytes in
/// [written, received) sit in `held` as the `ByteBuffer`s they arrived in (no copy); a
/// direction no stage inspects never holds anything: each chunk is written as it is read.
struct RelayPipe {
    /// SSS_DIR_UP or SSS_DIR_DOWN.
    let direction: UInt32
    /// Whether any entered stage inspects this direction (data events).
    var inspected = false
    var received: UInt64 = 0
    var released: UInt64 = 0
    var written: UInt64 = 0
    /// Chunks read but not yet written, oldest first; `heldBytes` = received - written.
    /// Created by the first `hold`: a direction no stage inspects never allocates it (an empty
    /// CircularBuffer still allocates storage).
    var held: CircularBuffer<ByteBuffer>?
    /// The source half-closed (FIN); `eofForwarded` once the sink's output was shut.
    var eofReceived = false
    var eofForwarded = false
    /// Every byte before the EOF was written and the sink's output was shut.
    var eofDelivered = false
    /// A read was suppressed and must be issued when the pipe can take bytes again.
    var readSuppressed = false
    /// A stage asked for a re-offer; the timer is armed.
    var reofferTimer: Scheduled<Void>?
    /// Bytes written since the last flush.
    var unflushed = false

    init(direction: UInt32) { self.direction = direction }

    var heldBytes: UInt64 { received &- written }

    /// Whether the pipe should read more: the sink is writable and the held bytes are below
    /// the limit.
    func mayRead(sinkWritable: Bool, limit: UInt64) -> Bool {
        sinkWritable && heldBytes < limit && !eofReceived
    }

    /// The fast path (no stage inspects this direction): the chunk is written as it came.
    mutating func passThrough(_ buffer: ByteBuffer) {
        received &+= UInt64(buffer.readableBytes)
        released = received
        written = received
        unflushed = true
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

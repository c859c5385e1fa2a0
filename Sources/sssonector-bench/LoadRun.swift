import Locking
import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// One load run: starts the connections, lets them warm up, measures for the duration, stops
/// them, and merges every connection's figures.
final class LoadRun: Sendable {
    let target: TargetArgument
    let mode: Mode
    let payload: Int
    let interval: UInt64
    let group: MultiThreadedEventLoopGroup
    let shared: SharedState

    init(target: TargetArgument, mode: Mode, payload: Int, interval: UInt64, group: MultiThreadedEventLoopGroup) {
        self.target = target
        self.mode = mode
        self.payload = payload
        self.interval = interval
        self.group = group
        self.shared = SharedState()
    }

    /// Flags every connection reads on its own loop.
    final class SharedState: Sendable {
        let measuring = Atomic<Bool>(false)
        let stopping = Atomic<Bool>(false)
        let workers = Locked<[LoadWorker]>([])
        let messages = Atomic<UInt64>(0)
        let bytes = Atomic<UInt64>(0)
    }

    func execute(connections: Int, warmup: UInt64, duration: UInt64, progress: Bool) throws -> LoadResult {
        let message = ByteBuffer(bytes: (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        for i in 0..<connections {
            let loop = group.next()
            let worker = LoadWorker(run: self, loop: loop, message: message, index: i)
            shared.workers.withLock { $0.append(worker) }
            loop.execute { worker.start() }
        }
        sleepNanoseconds(warmup)
        shared.messages.store(0, ordering: .relaxed)
        shared.bytes.store(0, ordering: .relaxed)
        shared.measuring.store(true, ordering: .relaxed)
        let start = DispatchTime.now().uptimeNanoseconds
        var lastMessages: UInt64 = 0, lastBytes: UInt64 = 0
        while DispatchTime.now().uptimeNanoseconds - start < duration {
            sleepNanoseconds(min(1_000_000_000, duration - (DispatchTime.now().uptimeNanoseconds - start)))
            if progress {
                let m = shared.messages.load(ordering: .relaxed), b = shared.bytes.load(ordering: .relaxed)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                FileHandle.standardError.write(Data(String(format: "%5.1fs  %9llu msg/s  %9.1f MB/s\n", elapsed,
                                                           m - lastMessages, Double(b - lastBytes) / 1e6).utf8))
                lastMessages = m
                lastBytes = b
            }
        }
        shared.measuring.store(false, ordering: .relaxed)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        shared.stopping.store(true, ordering: .relaxed)
        var latencies = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000,
                                          numberOfSignificantValueDigits: .three)
        var errors: [String: UInt64] = [:]
        for worker in shared.workers.withLock({ $0 }) {
            let snapshot = try worker.loop.submit { worker.stop() }.wait()
            latencies.add(snapshot.latencies)
            for (k, v) in snapshot.errors { errors[k, default: 0] += v }
        }
        return LoadResult(mode: mode, connections: connections, payload: payload, seconds: elapsed,
                          messages: shared.messages.load(ordering: .relaxed), bytes: shared.bytes.load(ordering: .relaxed),
                          latencies: latencies, errors: errors)
    }

    private func sleepNanoseconds(_ ns: UInt64) {
        var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        nanosleep(&ts, nil)
    }
}

/// What one worker hands back when stopped.
struct WorkerSnapshot: Sendable {
    let latencies: Histogram<UInt64>
    let errors: [String: UInt64]
}

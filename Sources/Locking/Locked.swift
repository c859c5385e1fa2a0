import Glibc

/// A value behind a lock: `withLock` runs a closure with exclusive access to it.
///
/// Why not the standard library's `Synchronization.Mutex`: on Linux it locks with atomics and
/// futexes inside the uninstrumented runtime, so ThreadSanitizer cannot see its
/// happens-before edges and reports every access it protects as a race. This lock is a
/// `pthread_mutex_t`, which ThreadSanitizer intercepts, and it costs the same uncontended. The
/// host and every Swift stage use it (StageKit re-exports it), so the whole suite can run under
/// ThreadSanitizer with no false reports.
public final class Locked<Value>: @unchecked Sendable {  // `value` is only touched under `mutex`
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, exclusively.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

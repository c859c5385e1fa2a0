import Glibc
import Synchronization

/// Active health checks off the event loops: a thread of the balancer's own that, every
/// interval, tries a TCP connect (with a timeout) to each upstream and reports the result.
final class HealthChecker: Sendable {
    private let stop = Atomic<Bool>(false)

    /// Starts the thread. `targets` is read each round (the set may change); `report` gets
    /// (id, success, error text).
    init(interval: UInt64, timeout: UInt64,
         targets: @escaping @Sendable () -> [(id: UInt64, address: String)],
         report: @escaping @Sendable (UInt64, Bool, String?) -> Void) {
        let thread = HealthThread(checker: self, interval: interval, timeout: timeout, targets: targets, report: report)
        thread.start()
    }

    var stopped: Bool { stop.load(ordering: .relaxed) }

    /// Stops the thread after its current round.
    func cancel() { stop.store(true, ordering: .relaxed) }

    /// Connects to `host:port` within `timeout` nanoseconds; nil on success, else the error.
    static func probe(_ address: String, timeout: UInt64) -> String? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return "bad address \(address)"
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return "cannot resolve \(host)" }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&p, 1, Int32(clamping: timeout / 1_000_000))
        if ready == 0 { return "timeout" }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0 ? nil : String(cString: strerror(error))
    }
}

/// The checker's thread body.
private final class HealthThread: @unchecked Sendable {  // immutable after init
    let checker: HealthChecker
    let interval: UInt64
    let timeout: UInt64
    let targets: @Sendable () -> [(id: UInt64, address: String)]
    let report: @Sendable (UInt64, Bool, String?) -> Void

    init(checker: HealthChecker, interval: UInt64, timeout: UInt64,
         targets: @escaping @Sendable () -> [(id: UInt64, address: String)],
         report: @escaping @Sendable (UInt64, Bool, String?) -> Void) {
        self.checker = checker
        self.interval = interval
        self.timeout = timeout
        self.targets = targets
        self.report = report
    }

    func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { raw in
            let body = Unmanaged<HealthThread>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        pthread_detach(thread)
    }

    func run() {
        while !checker.stopped {
            for target in targets() where !checker.stopped {
                let error = HealthChecker.probe(target.address, timeout: timeout)
                report(target.id, error == nil, error)
            }
            // Sleep in short steps so a stop is noticed quickly.
            var remaining = interval
            while remaining > 0 && !checker.stopped {
                let step = min(remaining, 50_000_000)
                var ts = timespec(tv_sec: Int(step / 1_000_000_000), tv_nsec: Int(step % 1_000_000_000))
                nanosleep(&ts, nil)
                remaining -= step
            }
        }
    }
}

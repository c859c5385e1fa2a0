import CHiredis
import Glibc
import Locking

/// A Redis reply, as far as the shared budget reads them.
public enum RedisReply: Sendable, Equatable {
    case integer(Int64)
    case string(String)
    case status(String)
    case error(String)
    case array([RedisReply])
    case null
}

/// Why a command got no reply.
public enum RedisFailure: Error, Sendable, Equatable {
    /// No connection to Redis now (refused, down, reconnecting): failed at once, not queued.
    case notConnected
    /// The connection closed before the reply came.
    case disconnected
    /// No reply within the link's timeout (the command may still run on the server).
    case timedOut
    /// Redis answered with an error (or with a reply the caller cannot read).
    case server(String)
}

/// Where Redis listens: `host:port` or `unix:/path` (the `shared.redis` key).
public enum RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int32)
    case unix(path: String)

    /// Parses `host:port`, `[v6]:port` or `unix:/path`; nil when it is neither.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else { return nil }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int32(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// One connection to Redis, owned by a thread of its own, through hiredis's asynchronous API.
///
/// Commands come from any thread (the event loops' open hooks) and go out pipelined: hiredis
/// appends each to its output buffer and the thread writes them together when the socket is
/// writable; replies are matched in order. The thread polls the socket and an eventfd that
/// wakes it for new commands, so no event loop ever waits on Redis. hiredis's own event-library
/// adapters (libevent, libev, ...) do not fit SwiftNIO, whose selector offers no descriptor
/// watching; the adapter here is hiredis's documented hook table (`ac->ev`) over `poll(2)`.
///
/// A command without a reply within `timeout` completes `.timedOut`; one sent while there is
/// no connection fails `.notConnected` at once. The link reconnects every `reconnectInterval`
/// while Redis is away. Completions run on the link's thread: keep them short.
public final class RedisLink: @unchecked Sendable {  // thread-confined state below `queue`
    public typealias Completion = @Sendable (Result<RedisReply, RedisFailure>) -> Void

    public let endpoint: RedisEndpoint
    public let timeout: UInt64
    public let reconnectInterval: UInt64
    /// Runs on the link's thread each time a connection is up, before queued commands.
    private let onConnect: @Sendable (RedisLink) -> Void

    private struct Submitted {
        let argv: [String]
        let completion: Completion
        let submittedAt: UInt64
    }
    /// Commands from other threads, taken by the link's thread.
    private enum Phase { case down, connecting, connected }
    private let queue = Locked<(commands: [Submitted], running: Bool, phase: Phase)>(([], true, .connecting))
    private let wakeFD: Int32
    private var thread: pthread_t?

    // The link thread's own state.
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var wantRead = false
    private var wantWrite = false
    private var inFlight = InFlightQueue()
    private var reconnectAt: UInt64 = 0

    /// Starts the link's thread; the first connect begins at once.
    public init(endpoint: RedisEndpoint, timeout: UInt64, reconnectInterval: UInt64 = 500_000_000,
                onConnect: @escaping @Sendable (RedisLink) -> Void = { _ in }) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.reconnectInterval = reconnectInterval
        self.onConnect = onConnect
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        var t = pthread_t()
        let retained = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&t, nil, { raw in
            let link = Unmanaged<RedisLink>.fromOpaque(raw!).takeRetainedValue()
            link.run()
            return nil
        }, retained) == 0 {
            thread = t
        } else {
            Unmanaged<RedisLink>.fromOpaque(retained).release()
        }
    }

    /// Whether a connection to Redis is up now.
    public var isConnected: Bool { queue.withLock { $0.phase == .connected } }
    /// Whether a command sent now can be answered (connected, or a connect in progress).
    public var isReachable: Bool { queue.withLock { $0.phase != .down } }

    /// Sends `argv` (from any thread). `completion` runs once, on the link's thread.
    public func send(_ argv: [String], completion: @escaping Completion) {
        let entry = Submitted(argv: argv, completion: completion, submittedAt: Self.monotonicNow())
        let (accepted, wake) = queue.withLock { q -> (Bool, Bool) in
            // Down (between reconnects): fail at once, nobody waits out a timeout.
            guard q.running, q.phase != .down, q.commands.count < Self.maximumQueued else { return (false, false) }
            q.commands.append(entry)
            return (true, q.commands.count == 1)
        }
        guard accepted else { return completion(.failure(.notConnected)) }
        if wake { signal() }
    }

    /// Commands held between two turns of the link's thread, at most (then new ones fail at once).
    static let maximumQueued = 10_000

    /// Stops the thread: commands in flight complete `.disconnected`. Waits for the thread.
    public func stop() {
        let wasRunning = queue.withLock { q -> Bool in
            defer { q.running = false }
            return q.running
        }
        guard wasRunning else { return }
        signal()
        if let thread { pthread_join(thread, nil) }
    }

    deinit { close(wakeFD) }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: the link's thread

    private func run() {
        while queue.withLock({ $0.running }) {
            let now = Self.monotonicNow()
            if context == nil && now >= reconnectAt { connect(now: now) }
            takeQueued(now: now)
            expireInFlight(now: Self.monotonicNow())
            pollOnce()
        }
        if let context { redisAsyncFree(context) }  // fails what is in flight (the cleanup hook)
        failQueued(.disconnected)
    }

    private func connect(now: UInt64) {
        reconnectAt = now &+ reconnectInterval
        let c: UnsafeMutablePointer<redisAsyncContext>?
        switch endpoint {
        case .tcp(let host, let port): c = redisAsyncConnect(host, port)
        case .unix(let path): c = redisAsyncConnectUnix(path)
        }
        guard let c, c.pointee.err == 0 else {
            // Refused at once (no such socket, no memory): down until the next attempt, and
            // what waits fails now rather than at the host's timeout.
            if let c { redisAsyncFree(c) }
            queue.withLock { $0.phase = .down }
            return failQueued(.notConnected)
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        c.pointee.data = me
        c.pointee.ev.data = me
        c.pointee.ev.addRead = { RedisLink.from($0).wantRead = true }
        c.pointee.ev.delRead = { RedisLink.from($0).wantRead = false }
        c.pointee.ev.addWrite = { RedisLink.from($0).wantWrite = true }
        c.pointee.ev.delWrite = { RedisLink.from($0).wantWrite = false }
        c.pointee.ev.cleanup = { RedisLink.from($0).contextGone() }
        redisAsyncSetConnectCallback(c) { ac, status in
            guard let ac, let link = ac.pointee.data.map(RedisLink.from) else { return }
            if status == REDIS_OK { link.connected() }
        }
        context = c
        queue.withLock { $0.phase = .connecting }
        // hiredis starts the non-blocking connect; the first write event completes it.
        wantWrite = true
    }

    private func connected() {
        queue.withLock { $0.phase = .connected }
        onConnect(self)
    }

    /// hiredis freed the context (error, remote close or our stop): every command it held has
    /// had its callback with a NULL reply already.
    private func contextGone() {
        context = nil
        wantRead = false
        wantWrite = false
        queue.withLock { $0.phase = .down }
        failQueued(.notConnected)
    }

    private func failQueued(_ failure: RedisFailure) {
        let pending = queue.withLock { q -> [Submitted] in
            defer { q.commands.removeAll() }
            return q.commands
        }
        for entry in pending { entry.completion(.failure(failure)) }
    }

    private func takeQueued(now: UInt64) {
        guard let context else { return }
        let taken = queue.withLock { q -> [Submitted] in
            defer { q.commands.removeAll(keepingCapacity: true) }
            return q.commands
        }
        for entry in taken { issue(entry, on: context) }
    }

    /// Hands one command to hiredis (it goes out with the next write). Also the path of
    /// commands issued from `onConnect` (on this thread).
    private func issue(_ entry: Submitted, on context: UnsafeMutablePointer<redisAsyncContext>) {
        let command = InFlightCommand(completion: entry.completion, sentAt: entry.submittedAt)
        let box = Unmanaged.passRetained(command).toOpaque()
        // One buffer for every argument (hiredis copies them into its output buffer and takes
        // lengths, so no NUL and no copy per argument).
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        for argument in entry.argv {
            bytes.append(contentsOf: argument.utf8)
            lengths.append(argument.utf8.count)
        }
        let status = bytes.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
            var offset = 0
            var pointers: [UnsafePointer<CChar>?] = lengths.map { length in
                defer { offset += length }
                return base + offset
            }
            return redisAsyncCommandArgv(context, { _, reply, privdata in
                guard let privdata else { return }
                let command = Unmanaged<InFlightCommand>.fromOpaque(privdata).takeRetainedValue()
                command.finish(reply.map { RedisReply($0.assumingMemoryBound(to: redisReply.self)) }.map { .success($0) }
                               ?? .failure(.disconnected))
            }, box, Int32(lengths.count), &pointers, &lengths)
        }
        if status == REDIS_OK {
            inFlight.append(command)
        } else {
            Unmanaged<InFlightCommand>.fromOpaque(box).release()
            entry.completion(.failure(.disconnected))
        }
    }

    /// Sends a command from `onConnect` (the link's thread only), ahead of queued ones.
    public func sendFromLinkThread(_ argv: [String], completion: @escaping Completion) {
        guard let context else { return completion(.failure(.notConnected)) }
        issue(Submitted(argv: argv, completion: completion, submittedAt: Self.monotonicNow()), on: context)
    }

    private func expireInFlight(now: UInt64) {
        inFlight.dropFinished()
        inFlight.expire(olderThan: now &- min(now, timeout))
    }

    private func pollOnce() {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        if let context {
            var events: Int16 = 0
            if wantRead { events |= Int16(POLLIN) }
            if wantWrite { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: context.pointee.c.fd, events: events, revents: 0))
        }
        let now = Self.monotonicNow()
        var wait: UInt64 = context == nil ? (reconnectAt > now ? reconnectAt - now : 0) : 1_000_000_000
        if let oldest = inFlight.oldestSentAt {
            let deadline = oldest &+ timeout
            wait = min(wait, deadline > now ? deadline - now : 0)
        }
        let milliseconds = Int32(min(1000, (wait + 999_999) / 1_000_000))
        guard poll(&fds, nfds_t(fds.count), milliseconds) > 0 else { return }
        if fds[0].revents != 0 {
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
        }
        guard fds.count > 1, let context else { return }
        let revents = fds[1].revents
        if revents & Int16(POLLOUT) != 0 { redisAsyncHandleWrite(context) }
        // The write may have ended the context (a failed connect): read only if it is still ours.
        if let still = self.context, still == context, revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            redisAsyncHandleRead(context)
        }
    }

    fileprivate static func from(_ raw: UnsafeMutableRawPointer?) -> RedisLink {
        Unmanaged<RedisLink>.fromOpaque(raw!).takeUnretainedValue()
    }
}

/// A command hiredis holds: it completes once, by its reply, the connection's end or the
/// link's timeout (whichever comes first; a reply after a timeout is dropped).
final class InFlightCommand: @unchecked Sendable {  // the link's thread only
    let completion: RedisLink.Completion
    let sentAt: UInt64
    private(set) var finished = false

    init(completion: @escaping RedisLink.Completion, sentAt: UInt64) {
        self.completion = completion
        self.sentAt = sentAt
    }

    func finish(_ result: Result<RedisReply, RedisFailure>) {
        guard !finished else { return }
        finished = true
        completion(result)
    }
}

/// Commands in the order they were sent (replies come in that order), for the timeout scan.
struct InFlightQueue {
    private var items: [InFlightCommand] = []
    private var head = 0

    mutating func append(_ command: InFlightCommand) { items.append(command) }

    /// When the oldest unfinished command was sent.
    var oldestSentAt: UInt64? { head < items.count ? items[head].sentAt : nil }

    mutating func dropFinished() {
        while head < items.count && items[head].finished { head += 1 }
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    /// Completes `.timedOut` every unfinished command sent at or before `cutoff`.
    mutating func expire(olderThan cutoff: UInt64) {
        while head < items.count && items[head].sentAt <= cutoff {
            items[head].finish(.failure(.timedOut))
            head += 1
        }
    }
}

extension RedisReply {
    init(_ reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        func text() -> String {
            guard let str = r.str else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
        }
        switch r.type {
        case REDIS_REPLY_INTEGER: self = .integer(Int64(r.integer))
        case REDIS_REPLY_STRING: self = .string(text())
        case REDIS_REPLY_STATUS: self = .status(text())
        case REDIS_REPLY_ERROR: self = .error(text())
        case REDIS_REPLY_ARRAY:
            self = .array((0..<r.elements).compactMap { i in r.element[i].map { RedisReply(UnsafePointer($0)) } })
        default: self = .null
        }
    }
}

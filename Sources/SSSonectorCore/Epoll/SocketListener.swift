import CEpoll
import Glibc
import NIOCore
import StageABI
import Synchronization

/// A pipeline's listening socket on one `EpollLoop` (the epoll data path): accepts connections
/// and starts a `ProxySession` for each on the same loop, with `SocketEndpoint`s for its sides.
/// The same contract as `PipelineListener`'s SwiftNIO sockets: one socket per loop bound with
/// `SO_REUSEPORT`, `max_connections` enforced at accept (`overload`), accepts paused for
/// `AcceptBackoff.pause` when the process is out of descriptors. Confined to its loop.
final class SocketListener: EpollSource, @unchecked Sendable {  // loop-confined but `isOpen`, an atomic
    let fd: CInt
    let loop: EpollLoop
    /// The address it is bound to (the port filled in).
    let boundAddress: SocketAddress
    private let slot: RuntimeSlot
    private let idleTimers: LoopIdleTimers
    private let loopIndex: Int
    private let backoff: AcceptBackoff
    private var registration = -1
    private var paused = false
    private let open = Atomic<Bool>(true)
    /// Still accepting (read from any thread: `/healthz`).
    var isOpen: Bool { open.load(ordering: .relaxed) }
    /// The bound address when it names one interface: every accepted socket's local address,
    /// so no `getsockname` per connection; nil for a wildcard bind.
    private let fixedLocal: SocketAddress?
    /// Connections accepted per event before the loop serves other sockets.
    static let acceptsPerEvent = 64

    /// Binds `address` on `loop` (TCP_NODELAY and keepalive set on the listening socket, which
    /// accepted sockets inherit) and starts accepting. Throws the system call's error.
    init(address: SocketAddress, settings: ConnectionSettings, slot: RuntimeSlot, loop: EpollLoop, loopIndex: Int,
         clock: any HostClock) throws {
        let fd = socket(address.protocol.rawValue, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            try SocketTuning.check(SocketTuning.set(fd, SOL_SOCKET, SO_REUSEADDR, 1), "SO_REUSEADDR")
            try SocketTuning.check(SocketTuning.set(fd, SOL_SOCKET, SO_REUSEPORT, 1), "SO_REUSEPORT")
            SocketTuning.applyInherited(settings, to: fd)
            try SocketTuning.check(address.withSockAddr { bind(fd, $0, socklen_t($1)) }, "bind")
            try SocketTuning.check(listen(fd, 1024), "listen")
            boundAddress = try SocketTuning.localAddress(of: fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.loop = loop
        self.slot = slot
        self.loopIndex = loopIndex
        self.idleTimers = LoopIdleTimers(loop: loop, clock: clock)
        self.backoff = AcceptBackoff(slot: slot)
        self.fixedLocal = SocketTuning.isWildcard(boundAddress) ? nil : boundAddress
    }

    /// Starts accepting (on the loop).
    func start() throws {
        registration = try loop.register(fd, self, events: EPOLLIN.rawValue | EPOLLET.rawValue)
        loop.later(self)  // connections that arrived before the registration
    }

    /// Stops accepting and closes the socket (on the loop); accepted connections go on.
    func close() {
        guard isOpen else { return }
        open.store(false, ordering: .relaxed)
        if registration >= 0 { loop.deregister(registration, fd: nil) }
        Glibc.close(fd)
    }

    func ready(_ events: UInt32) {
        guard isOpen, !paused else { return }
        for _ in 0..<Self.acceptsPerEvent {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept4(fd, $0, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                }
            }
            if client >= 0 {
                admit(client, peer: SocketTuning.address(storage))
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return
            case EINTR, ECONNABORTED, EPROTO: continue
            default:
                // Out of descriptors or memory: the connections wait in the backlog meanwhile.
                paused = true
                let pause = backoff.delay(after: IOError(errnoCode: errno, reason: "accept")) ?? AcceptBackoff.pause
                loop.assumeIsolated().scheduleTask(in: pause) { [self] in
                    paused = false
                    ready(0)
                }
                return
            }
        }
        loop.later(self)  // more may wait: after the other sockets' events
    }

    /// Starts a session for an accepted socket, as `PipelineListener.admit` does for a channel.
    private func admit(_ client: CInt, peer: SocketAddress?) {
        let runtime = slot.enterRuntime()
        let gate = slot.gate
        guard gate.tryEnter(limit: runtime.config.connection.maxConnections) else {
            runtime.counters.rejected("overload")
            runtime.leave()
            Glibc.close(client)
            return
        }
        runtime.counters.opened()
        let local = fixedLocal ?? (try? SocketTuning.localAddress(of: client))
        let id = runtime.registry.makeID()
        let session = ProxySession(pipeline: runtime, gate: gate, loop: loop, idleTimers: idleTimers, id: id,
                                   threadIndex: loopIndex, peer: peer, local: local)
        runtime.registry.add(NIOLoopBound(session, eventLoop: loop), id: id, scope: runtime.scope)
        let endpoint = SocketEndpoint(fd: client, side: .client, session: session, loop: loop)
        do {
            try endpoint.attach()
        } catch {
            session.finish(SSS_CLOSE_ERROR)  // gives back its place and its registry entry
            return
        }
        session.clientAttached(endpoint)
        session.start(peerIdentity: nil)
    }
}

extension PipelineListener {
    /// Binds the pipeline's listen address on every epoll loop (the epoll data path). The
    /// first socket binds the address as written; the others the port it got (port 0 works).
    static func bindSockets(_ runtime: PipelineRuntime, loops: [EpollLoop]) throws -> PipelineListener {
        let listen = runtime.config.listen.address
        let slot = RuntimeSlot(runtime)
        var sockets: [SocketListener] = []
        do {
            var port = listen.port
            for (index, loop) in loops.enumerated() {
                let address = try SocketAddress(ipAddress: listen.host, port: port)
                let settings = runtime.config.connection, clock = runtime.clock
                let socket = try loop.submit {
                    let socket = try SocketListener(address: address, settings: settings, slot: slot, loop: loop,
                                                    loopIndex: index, clock: clock)
                    try socket.start()
                    return socket
                }.wait()
                sockets.append(socket)
                port = socket.boundAddress.port ?? port
            }
        } catch {
            for socket in sockets { socket.loop.execute { socket.close() } }
            throw error
        }
        return PipelineListener(slot: slot, channels: [], sockets: sockets)
    }
}

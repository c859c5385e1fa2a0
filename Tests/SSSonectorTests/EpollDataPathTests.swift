import Foundation
import Glibc
import Logging
import NIOCore
import Synchronization
import Testing
@testable import SSSonectorCore
import SSSonectorDemo

/// The epoll data path's own pieces (docs/architecture.md, "Two data paths"): the loop keeps the
/// SwiftNIO `EventLoop` contract the session relies on, and a session relays over real sockets
/// with its backpressure bound. The end-to-end suites run on this path too
/// (`SSSONECTOR_TEST_DATA_PATH`, scripts/test.sh).
@Suite struct EpollDataPathTests {
    @Test func tasksRunOnTheLoopInOrderFromAnyThread() throws {
        let loop = try EpollLoop(name: "test-epoll")
        defer { try? loop.syncShutdownGracefully() }
        #expect(!loop.inEventLoop)
        let seen = Mutex<[Int]>([])
        let futures = (0..<100).map { i in
            loop.submit {
                #expect(loop.inEventLoop)
                seen.withLock { $0.append(i) }
            }
        }
        for future in futures { try future.wait() }
        #expect(seen.withLock { $0 } == Array(0..<100))
    }

    @Test func scheduledTasksRunInDeadlineOrderAndACancelledOneFailsItsFuture() throws {
        let loop = try EpollLoop(name: "test-epoll")
        defer { try? loop.syncShutdownGracefully() }
        let order = Mutex<[Int]>([])
        let start = NIODeadline.now()
        let scheduled = [30, 10, 20].map { ms in
            loop.scheduleTask(deadline: start + .milliseconds(Int64(ms))) { order.withLock { $0.append(ms) } }
        }
        let never = loop.scheduleTask(in: .hours(1)) { Issue.record("a cancelled task ran") }
        never.cancel()
        for task in scheduled { try task.futureResult.wait() }
        #expect(order.withLock { $0 } == [10, 20, 30])
        #expect(throws: EventLoopError.cancelled) { try never.futureResult.wait() }
        // Promises and futures work as on any loop.
        let promise = loop.makePromise(of: Int.self)
        loop.execute { promise.succeed(7) }
        #expect(try promise.futureResult.map { $0 * 6 }.wait() == 42)
    }

    @Test func anUpstreamThatNeverAnswersTheConnectFailsAtConnectTimeout() throws {
        // A listener whose backlog is full: the kernel drops the next SYN, so a connect to it
        // neither succeeds nor fails until the relay's own timer gives up.
        let upstream = try LoopbackListener(backlog: 0)
        defer { upstream.close() }
        let filler = try BlockingTCPClient(host: "127.0.0.1", port: upstream.port)
        defer { withExtendedLifetime(filler) {} }
        let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "connection": {"connect_timeout": "200ms", "retry_attempts": 0}, "upstreams": [{"name": "u", "address": "127.0.0.1:\#(upstream.port)"}]}"#
        let config = try PipelineDecoder.decode(text: text, file: "t.json").get()
        let loop = try EpollLoop(name: "test-epoll")
        defer { try? loop.syncShutdownGracefully() }
        let (_, client, runtime) = try Self.relay(config, upstreamPort: upstream.port, on: loop)
        defer { Glibc.close(client) }
        var byte: UInt8 = 0
        // The relay closes the client once the attempt failed (not the 20 s receive timeout).
        let received = recv(client, &byte, 1, 0)
        #expect(received == 0 || (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        // Read on the loop: the close the client saw is part of the session's `finish`, whose
        // counting completes before the loop runs anything else.
        let figures = try loop.submit { (runtime.counters.figures[.failedConnects], runtime.counters.figures[.active]) }.wait()
        #expect(figures.0 == 1 && figures.1 == 0, "\(figures)")
    }

    @Test func aSinkThatReadsNothingStopsTheSourceAtItsWatermarkAndLosesNothing() throws {
        // The upstream: a real listener on loopback that accepts and reads nothing until told.
        let upstream = try LoopbackListener()
        defer { upstream.close() }
        let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "u", "address": "127.0.0.1:\#(upstream.port)"}]}"#
        let config = try PipelineDecoder.decode(text: text, file: "t.json").get()
        #expect(try DataPathChoice.auto.resolve(for: config) == .epoll)
        let loop = try EpollLoop(name: "test-epoll")
        defer { try? loop.syncShutdownGracefully() }
        let (session, client, _) = try Self.relay(config, upstreamPort: upstream.port, on: loop)

        let data = pattern(24 * 1024 * 1024)
        let sender = Thread {
            var offset = 0
            while offset < data.count {
                let sent = data[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { break }
                offset += sent
            }
            shutdown(client, Int32(SHUT_WR))
        }
        sender.start()
        let accepted = try upstream.accept()
        defer { Glibc.close(accepted) }
        // Nothing is read upstream. Once the kernel's buffers are full the relay stops reading
        // the client: with bytes queued for the upstream socket past its high watermark (the
        // session's backpressure), or, in bulk, with the zero-copy pipe waiting for the upstream
        // socket. Either way it holds at most the watermark plus one read.
        var held = -1
        #expect(eventually(30) {
            let state = try? loop.submit { () -> (Int, Bool) in
                guard let client = session.value.client as? SocketEndpoint,
                      let upstream = session.value.upstream as? SocketEndpoint else { return (-1, false) }
                let stalled = client.waitsForSink || !session.value.mayRead(.client)
                return (client.pipedBytes + upstream.queuedBytes, stalled)
            }.wait()
            held = state?.0 ?? -1
            return held > 0 && state?.1 == true
        })
        #expect(held <= SocketEndpoint.highWatermark + EpollLoop.receiveCapacity, "held \(held)")

        // Now the upstream reads: every byte arrives, in order, then the client's FIN.
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(accepted, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received += chunk[..<count]
        }
        #expect(received.count == data.count && received == data)
        Glibc.close(client)
    }
}

extension EpollDataPathTests {
    /// A session on `loop` for `config` (one upstream "u" at `upstreamPort`), relaying one end of
    /// a socket pair: returns the session, the test's end of the pair (blocking) and the runtime.
    static func relay(_ config: PipelineConfig, upstreamPort: Int, on loop: EpollLoop) throws
        -> (NIOLoopBound<ProxySession>, Int32, PipelineRuntime) {
        let harness = try ChainHarness(stages: [], upstreams: ["u"])
        let runtime = PipelineRuntime(config: config, upstreams: UpstreamTable([("u", "127.0.0.1:\(upstreamPort)", 1)]),
                                      chain: harness.chain, clock: SystemClock(), registry: ConnectionRegistry(),
                                      scope: ConnectionScope(), logger: Logger(label: "test"), dataPath: .epoll)
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw IOError(errnoCode: errno, reason: "socketpair") }
        let relayed = pair[1]
        _ = fcntl(relayed, F_SETFL, fcntl(relayed, F_GETFL) | O_NONBLOCK)
        let session = try loop.submit {
            _ = runtime.enter()
            let gate = AdmissionGate()
            _ = gate.tryEnter(limit: 10)
            runtime.counters.opened()
            let id = runtime.registry.makeID()
            let session = ProxySession(pipeline: runtime, gate: gate, loop: loop, idleTimers: LoopIdleTimers(loop: loop, clock: runtime.clock),
                                       id: id, threadIndex: 0, peer: nil, local: nil)
            runtime.registry.add(NIOLoopBound(session, eventLoop: loop), id: id, scope: runtime.scope)
            let endpoint = SocketEndpoint(fd: relayed, side: .client, session: session, loop: loop)
            try endpoint.attach()
            session.clientAttached(endpoint)
            session.start(peerIdentity: nil)
            return NIOLoopBound(session, eventLoop: loop)
        }.wait()
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return (session, pair[0], runtime)
    }
}

/// A loopback TCP listener on port 0 whose connections the test accepts and reads by hand.
final class LoopbackListener {
    let fd: Int32
    let port: Int

    init(backlog: Int32 = 16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0, listen(fd, backlog) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// The next connection (blocking, with a 10 s receive timeout set on it).
    func accept() throws -> Int32 {
        let connection = Glibc.accept(fd, nil, nil)
        guard connection >= 0 else { throw IOError(errnoCode: errno, reason: "accept") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return connection
    }

    func close() { Glibc.close(fd) }
}

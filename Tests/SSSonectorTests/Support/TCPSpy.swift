import Foundation
import Glibc
import Synchronization
@testable import SSSonectorCore
import SSSonectorDemo

/// A plain TCP forwarder that records every byte it passes, for checking what crosses the
/// network between two hosts (the tunnel's TLS). Loopback only, a thread per direction.
///
/// Every descriptor is closed only once no thread can use it any more: both directions of a
/// connection have ended before its two sockets close, and the accept loop has returned before
/// the listener closes. A descriptor closed while a thread still reads it is a number the next
/// socket of the process (another test's host, in this same process) can be given; the thread
/// would then read that connection's bytes.
final class TCPSpy: @unchecked Sendable {  // fields guarded by `lock`
    let port: Int
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var captured: [UInt8] = []
    private let acceptLoopEnded = DispatchSemaphore(value: 0)

    init(forwardingTo target: Int) throws {
        self.target = target
        let socket = try LoopbackSocket(listenBacklog: 16)
        self.listener = socket.fd
        self.port = socket.port
        let spy = self
        Thread.detachNewThread {
            spy.acceptLoop()
            spy.acceptLoopEnded.signal()
        }
    }

    /// Everything that crossed, both directions.
    var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return captured }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // `stop` shut the listener down
            }
            guard let upstream = try? BlockingTCPClient(host: "127.0.0.1", port: target, timeoutSeconds: 30) else {
                close(client)
                continue
            }
            let spy = self
            let directions = DispatchGroup()
            for (source, sink) in [(client, upstream.fd), (upstream.fd, client)] {
                directions.enter()
                Thread.detachNewThread {
                    spy.pump(from: source, to: sink)
                    directions.leave()
                }
            }
            directions.notify(queue: .global()) {
                close(client)
                withExtendedLifetime(upstream) {}  // its deinit closes the upstream socket
            }
        }
    }

    /// Copies `source` to `sink` until the source ends (then half-closes the sink) or the sink
    /// fails (then stops the source, so the other direction ends too).
    private func pump(from source: Int32, to sink: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, 65536, 0) }
            if n <= 0 { shutdown(sink, Int32(SHUT_WR)); return }
            lock.lock()
            captured.append(contentsOf: buffer[0..<n])
            lock.unlock()
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(sink, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m <= 0 {
                    shutdown(source, Int32(SHUT_RDWR))
                    shutdown(sink, Int32(SHUT_RDWR))
                    return
                }
                sent += m
            }
        }
    }

    /// Stops accepting: the blocked `accept` returns once the listener is shut down; the
    /// listener closes after the loop has returned. Connections already open go on.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        acceptLoopEnded.wait()
        close(listener)
    }
}

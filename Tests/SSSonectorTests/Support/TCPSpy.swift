import Foundation
import Glibc
import Synchronization
@testable import SSSonectorCore
import SSSonectorDemo

/// A plain TCP forwarder that records every byte it passes, for checking what crosses the
/// network between two hosts (the tunnel's TLS). One connection at a time, loopback only.
final class TCPSpy: @unchecked Sendable {  // fields guarded by `lock`
    let port: Int
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var captured: [UInt8] = []

    init(forwardingTo target: Int) throws {
        self.target = target
        let socket = try LoopbackSocket(listenBacklog: 16)
        self.listener = socket.fd
        self.port = socket.port
        let spy = self
        Thread.detachNewThread { spy.acceptLoop() }
    }

    /// Everything that crossed, both directions.
    var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return captured }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            guard let upstream = try? BlockingTCPClient(host: "127.0.0.1", port: target, timeoutSeconds: 30) else {
                close(client)
                continue
            }
            let spy = self
            let upstreamFD = upstream.fd
            Thread.detachNewThread { spy.pump(from: client, to: upstreamFD); withExtendedLifetime(upstream) {} }
            Thread.detachNewThread { spy.pump(from: upstreamFD, to: client) }
        }
    }

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
                if m <= 0 { return }
                sent += m
            }
        }
    }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
}

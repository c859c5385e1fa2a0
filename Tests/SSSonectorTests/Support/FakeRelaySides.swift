import Glibc
import Logging
import NIOCore
import NIOEmbedded
@testable import SSSonectorCore

/// A side's transport for `ProxySession` without a socket: it records what the session asks of
/// it (bytes written and flushed, the output shut, reads resumed, the close).
final class FakeEndpoint: RelayEndpoint {
    /// Bytes flushed to the peer, in order.
    private(set) var delivered: [UInt8] = []
    /// Bytes written and not yet flushed.
    private var queued: [ByteBuffer] = []
    private(set) var resumedReads = 0
    private(set) var closed = false
    private(set) var outputShut = false
    /// Shutdowns the session announced as followed by the close (`thenClose`).
    private(set) var shutdownsBeforeClose = 0
    private(set) var toldConnected = 0
    /// Whether a shutdown completes at once (else `completeShutdown` completes it).
    var shutdownCompletesAtOnce = true
    private var pendingShutdown: ((Error?) -> Void)?

    var deliveredText: String { String(decoding: delivered, as: UTF8.self) }

    func write(_ chunk: ByteBuffer) {
        precondition(!outputShut, "a write after the output was shut")
        queued.append(chunk)
    }

    func flush() {
        for chunk in queued { delivered += chunk.readableBytesView }
        queued.removeAll()
    }

    func shutdownOutputAfterWrites(thenClose: Bool, _ done: @escaping (Error?) -> Void) {
        flush()
        shutdownsBeforeClose += thenClose ? 1 : 0
        if shutdownCompletesAtOnce {
            outputShut = true
            done(nil)
        } else {
            pendingShutdown = done
        }
    }

    /// Completes a held shutdown: the FIN went out, or `error` kept it from going out.
    func completeShutdown(_ error: Error? = nil) {
        let done = pendingShutdown
        pendingShutdown = nil
        if error == nil { outputShut = true }
        done?(error)
    }

    func resumeReading() { resumedReads += 1 }
    func close() { closed = true }
    func upstreamConnected() { toldConnected += 1 }
}

/// An `UpstreamDialing` that follows a script: each dial takes the next plan.
final class ScriptedDialer: UpstreamDialing, @unchecked Sendable {  // driven by one test thread
    enum Plan {
        /// Connects at once to this endpoint.
        case connect(FakeEndpoint, writable: Bool = true, greeting: String? = nil, pooled: Bool = false)
        /// Fails at once, as a refused TCP connect.
        case refuse
        /// Stays in flight until `completeWaiting` (or the session cancels it).
        case wait
    }

    var plans: [Plan]
    /// The upstream names dialed, in order.
    private(set) var dialed: [String] = []
    private(set) var cancelled = 0
    private var waiting: ((Result<DialedUpstream, Error>) -> Void)?

    init(_ plans: [Plan]) { self.plans = plans }

    func dial(_ entry: UpstreamEntry, for session: ProxySession,
              completion: @escaping (Result<DialedUpstream, Error>) -> Void) -> UpstreamAttempt? {
        dialed.append(entry.name)
        switch plans.isEmpty ? .refuse : plans.removeFirst() {
        case .connect(let endpoint, let writable, let greeting, let pooled):
            completion(.success(Self.dialed(endpoint, writable: writable, greeting: greeting, pooled: pooled)))
            return nil
        case .refuse:
            completion(.failure(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
            return nil
        case .wait:
            waiting = completion
            return Attempt(dialer: self)
        }
    }

    /// Completes the attempt in flight with a connection to `endpoint`.
    func completeWaiting(with endpoint: FakeEndpoint, writable: Bool = true) {
        let completion = waiting
        waiting = nil
        completion?(.success(Self.dialed(endpoint, writable: writable, greeting: nil, pooled: false)))
    }

    private static func dialed(_ endpoint: FakeEndpoint, writable: Bool, greeting: String?, pooled: Bool) -> DialedUpstream {
        DialedUpstream(endpoint: endpoint, greeting: greeting.map { ByteBuffer(string: $0) }, pooled: pooled, writable: writable)
    }

    final class Attempt: UpstreamAttempt {
        private let dialer: ScriptedDialer
        init(dialer: ScriptedDialer) { self.dialer = dialer }
        func cancel() {
            dialer.cancelled += 1
            dialer.waiting = nil
        }
    }
}

/// One `ProxySession` on an `EmbeddedEventLoop` with a manual clock, real stage instances
/// (`ChainHarness`), fake sides and a scripted dialer: the relay's logic, step by step.
final class SessionRig {
    let harness: ChainHarness
    let loop = EmbeddedEventLoop()
    let dialer: ScriptedDialer
    let runtime: PipelineRuntime
    let session: ProxySession
    let client = FakeEndpoint()

    /// `connection`: the pipeline's `connection` object (JSON); `stages`: as `ChainHarness`.
    init(connection: String = "{}", stages: [(plugin: String, config: String)] = [("scriptstage", "{}")],
         upstreams: [String] = ["a"], plans: [ScriptedDialer.Plan]) throws {
        harness = try ChainHarness(stages: stages, upstreams: upstreams)
        dialer = ScriptedDialer(plans)
        let listed = upstreams.map { #"{"name": "\#($0)", "address": "127.0.0.1:9"}"# }.joined(separator: ", ")
        let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "connection": \#(connection), "upstreams": [\#(listed)]}"#
        let config = try PipelineDecoder.decode(text: text, file: "t.json").get()
        runtime = PipelineRuntime(config: config, upstreams: harness.table, chain: harness.chain, clock: harness.clock,
                                  registry: ConnectionRegistry(), scope: ConnectionScope(),
                                  logger: Logger(label: "test"), dialer: dialer)
        _ = runtime.enter()
        let gate = AdmissionGate()
        _ = gate.tryEnter(limit: 10)
        runtime.counters.opened()
        let id = runtime.registry.makeID()
        session = ProxySession(pipeline: runtime, gate: gate, loop: loop, idleTimers: LoopIdleTimers(loop: loop, clock: harness.clock),
                               id: id, threadIndex: 0, peer: try SocketAddress(ipAddress: "10.0.0.7", port: 40000), local: nil)
        runtime.registry.add(NIOLoopBound(session, eventLoop: loop), id: id, scope: runtime.scope)
        session.clientAttached(client)
    }

    deinit { try? loop.syncShutdownGracefully() }

    /// Moves the manual clock and the loop's timers together.
    func advance(milliseconds: UInt64) {
        harness.clock.advance(milliseconds: milliseconds)
        loop.advanceTime(by: .milliseconds(Int64(milliseconds)))
    }

    /// A read burst from `side`: one chunk, then the end of the burst.
    func send(_ text: String, from side: RelaySide) {
        session.read(side, ByteBuffer(string: text))
        session.readComplete(side)
    }

    /// What the stage at `index` recorded (open, data offers, close with its cause).
    func events(_ index: Int = 0) -> [String] { harness.events(index) }

    /// The stage's close record, or nil while the connection is open.
    var closeRecord: String? { events().last { $0.hasPrefix("close ") } }

    func figure(_ figure: PipelineFigure) -> UInt64 { runtime.counters.figures[figure] }
}

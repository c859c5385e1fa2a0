import Dispatch
import Logging
import Synchronization
import Testing
@testable import SSSonectorCore

/// A retired pipeline runtime is destroyed exactly once, by whoever ends its last use: the
/// retire itself when no connection is open, else the last connection's close. A connection
/// that arrives after the runtime drained is sent to its successor.
@Suite struct RuntimeLifecycleTests {
    func runtime() throws -> PipelineRuntime {
        let text = #"{"version": 1, "name": "t", "listen": {"address": "127.0.0.1:0"}, "upstreams": [{"name": "a", "address": "127.0.0.1:9"}]}"#
        let config = try PipelineDecoder.decode(text: text, file: "t.json").get()
        return PipelineRuntime(config: config, upstreams: UpstreamTable([("a", "127.0.0.1:9", 1)]),
                               chain: StageChain(stages: [], pipeline: "t", listener: "127.0.0.1:0"),
                               clock: ManualClock(), registry: ConnectionRegistry(), scope: ConnectionScope(),
                               logger: Logger(label: "test"))
    }

    @Test func theLastCloseAfterARetireDrainsItOnce() throws {
        let r = try runtime()
        let drained = Count()
        #expect(r.enter() && r.enter())
        r.retire { _ in drained.add() }
        #expect(drained.value == 0)
        r.leave()
        #expect(drained.value == 0)
        #expect(r.enter())  // still in use: a late connection may still enter
        r.leave()
        r.leave()
        #expect(drained.value == 1)
        #expect(!r.enter())  // drained: the listener takes the next runtime
        r.destroyStages()
        r.destroyStages()
        #expect(r.isDestroyed)
    }

    @Test func aRetireWithNoConnectionDrainsAtOnce() throws {
        let r = try runtime()
        let drained = Count()
        r.retire { _ in drained.add() }
        #expect(drained.value == 1)
        #expect(!r.enter())
    }

    @Test func concurrentClosesDrainExactlyOnce() throws {
        for _ in 0..<50 {
            let r = try runtime()
            let drained = Count()
            for _ in 0..<64 { #expect(r.enter()) }
            DispatchQueue.concurrentPerform(iterations: 65) { k in
                if k == 32 { r.retire { _ in drained.add() } } else { r.leave() }
            }
            #expect(drained.value == 1)
        }
    }
}

final class Count: Sendable {
    private let n = Atomic<Int>(0)
    func add() { n.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}

import Foundation
import Logging
import StageABI
@testable import SSSonectorCore

/// The `abi` target: the stage ABI boundary: one connection through a chain of the tape stage
/// (`Fuzz/fuzz_stage.c`), whose every answer comes from the fuzzer's bytes. Whatever a stage
/// answers, the host must clamp or refuse it: no trap, no out-of-bounds access, close exactly
/// once. `SSS_FUZZ_STAGE` names the stage library (`scripts/fuzz.sh` builds it).
func fuzzABI(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let rig = FuzzRig.shared, let data else { return 0 }
    rig.setTape(data, size)
    rig.runOneConnection(seed: size > 0 ? data[0] : 0)
    return 0
}

final class FuzzRig: @unchecked Sendable {  // one fuzzing thread
    static let shared: FuzzRig? = {
        guard let path = ProcessInfo.processInfo.environment["SSS_FUZZ_STAGE"] else {
            FileHandle.standardError.write(Data("set SSS_FUZZ_STAGE to the path of libfuzzstage.so\n".utf8))
            exit(2)
        }
        do {
            return try FuzzRig(library: try PluginLibrary.load(path))
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(2)
        }
    }()

    let type: StageType
    let setTapeFunction: @convention(c) (UnsafePointer<UInt8>?, Int) -> Void
    let table = UpstreamTable([("a", "127.0.0.1:9001", 1), ("b", "127.0.0.1:9002", 2), ("c", "127.0.0.1:9003", 0)])
    let services = HostServices(logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
                                clock: SystemClock(), metrics: MetricsRegistry(), metricLabels: [], poster: nil)
    let payload = [UInt8](repeating: 0x5A, count: 70_000)

    init(library: PluginLibrary) throws {
        type = try library.type(named: nil)
        let handle = try DynamicLibrary.open(path: library.path)
        guard let symbol = DynamicLibrary.symbol("sss_fuzz_set_tape", in: handle) else { throw FuzzRigError() }
        setTapeFunction = unsafeBitCast(symbol, to: (@convention(c) (UnsafePointer<UInt8>?, Int) -> Void).self)
    }

    func setTape(_ data: UnsafePointer<UInt8>, _ size: Int) { setTapeFunction(data, size) }

    func runOneConnection(seed: UInt8) {
        let stage: StageInstance
        do {
            stage = try StageInstance(type: type, name: "fuzz", pipeline: "p", configJSON: "{}",
                                      upstreams: table.current, threadCount: 1, services: services)
        } catch {
            return
        }
        let chain = StageChain(stages: [stage, stage], pipeline: "p", listener: "127.0.0.1:1")
        let connection = ConnectionChain(chain: chain, id: 1, threadIndex: 0, peer: sss_addr(), local: sss_addr(), acceptedAt: 0)
        var info = ConnectionChain.CloseInfo(cause: SSS_CLOSE_CLIENT_EOF)
        var opened = connection.open(now: 1)
        // A pending verdict (ABI 1.3): the fuzzed fallback applies, as at the host's timeout;
        // the second stage may pend again.
        while case .pending = opened, let settled = connection.settleWithFallback(now: 1) { opened = settled }
        if case .accepted = opened {
            let snapshot = table.current
            var tried = Set<UInt64>()
            for attempt in 1...3 {
                guard case .upstream(let index) = connection.choose(from: snapshot, tried: tried, now: 2) else { break }
                precondition(index >= 0 && index < snapshot.count, "the chain chose an upstream outside the set")
                tried.insert(snapshot.entries[index].id)
                connection.beginAttempt(upstream: index, in: snapshot, attempt: attempt)
                _ = connection.report(outcome: attempt == 3 ? SSS_CONNECT_OK : SSS_CONNECT_REFUSED, upstream: index, in: snapshot,
                                      attempt: attempt, osErrno: 111, latency: 5, remainingUntried: 1, now: 3,
                                      pooled: attempt == 3 && seed & 1 == 1)
            }
            var received: UInt64 = 0
            for step in 0..<4 {
                received += UInt64(1 + Int(seed) * 97 % 30_000)
                received = min(received, UInt64(payload.count))
                let grant = connection.offer(direction: step % 2 == 0 ? SSS_DIR_UP : SSS_DIR_DOWN, received: received,
                                             eof: step == 3, buffered: received, now: 4, reoffer: step > 1,
                                             slices: ArraySlices(bytes: payload))
                precondition(grant.releasedUpTo <= received, "a grant released bytes that were never received")
                if grant.closeReason != nil { info.cause = SSS_CLOSE_STAGE_CLOSED; break }
            }
        } else {
            info.cause = SSS_CLOSE_REJECTED
        }
        connection.close(info, now: 5)
        _ = stage.statsJSON()
        let status = chain.upstreamStatus(of: table.current, now: 6)
        precondition(status.count == table.current.count, "a status per upstream")
        precondition(status.allSatisfy { $0 & ~UInt8(SSS_STATUS_UNHEALTHY | SSS_STATUS_PAUSED) == 0 }, "status bits outside the ABI reached the host")
        _ = ControlAnswer.response(stage: stage, body: #"{"op":"get"}"#)
        stage.destroy()
    }
}

struct FuzzRigError: Error {}

/// Views of one byte array, from stream offset 0.
struct ArraySlices: DataSliceSource {
    let bytes: [UInt8]
    func withSlices(offset: UInt64, count: UInt64, _ body: (UnsafeBufferPointer<sss_slice>) -> UInt32) -> UInt32 {
        bytes.withUnsafeBufferPointer { all in
            let start = Int(min(offset, UInt64(all.count)))
            let end = Int(min(offset + count, UInt64(all.count)))
            var slice = sss_slice(ptr: all.baseAddress! + start, len: UInt64(end - start))
            return withUnsafePointer(to: &slice) { body(UnsafeBufferPointer(start: $0, count: 1)) }
        }
    }
}

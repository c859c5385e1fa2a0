// Measures what one stage hook call costs through the ABI (release build):
//   swift build -c release --product stage-hook-bench
//   Plugins/examples/build-c-example.sh release
//   .build/release/stage-hook-bench [iterations]
// Direct calls through the loaded function pointers, as the host's chain makes them, for the
// Swift example (StageKit, data hook with per-connection state) and the C example (open hook),
// plus the whole per-chunk path of ConnectionChain.offer with and without a data stage.
import Foundation
import Logging
import SSSonectorCore
import StageABI

let iterations = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 50_000_000 : 50_000_000
let services = HostServices(logger: Logger(label: "bench"), clock: SystemClock(), metrics: MetricsRegistry(),
                            metricLabels: [], poster: nil)
let upstreams = UpstreamTable([("a", "127.0.0.1:9", 1)])

func instance(_ plugin: String, _ config: String) -> StageInstance {
    do {
        let library = try PluginLibrary.load(plugin)
        return try StageInstance(type: library.type(named: nil), name: plugin, pipeline: "bench", configJSON: config,
                                 upstreams: upstreams.current, threadCount: 1, services: services)
    } catch {
        fatalError("\(error)")
    }
}

@inline(never) func measure(_ label: String, calls: Int = iterations, _ body: () -> Void) {
    body()  // warm up
    var best = Double.infinity
    for _ in 0..<3 {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / Double(calls))
    }
    print(String(format: "%-66@ %7.2f ns/call (best of 3, %d calls)", label as NSString, best, calls))
}

var peer = sss_addr()
peer.family = UInt16(SSS_AF_INET)
peer.addr.0 = 127; peer.addr.3 = 1
var conn = sss_conn()
conn.struct_size = UInt32(MemoryLayout<sss_conn>.size)
conn.peer = peer

// Swift (StageKit): bytecap's data hook with its per-connection state.
let swiftStage = instance("bytecap", #"{"max_bytes": "1000GiB"}"#)
var swiftSlot: UnsafeMutableRawPointer? = nil
var openResult = sss_open_result(struct_size: UInt32(MemoryLayout<sss_open_result>.size), reason_code: 0, events: ~0, reason_buf: nil, reason_cap: 0,
                                 pending_timeout_ns: 0, fallback_verdict: SSS_REJECT, fallback_reason_code: 0)
_ = swiftStage.hooks.on_open!(swiftStage.inst, &conn, &swiftSlot, &openResult)
var args = sss_data_args(struct_size: UInt32(MemoryLayout<sss_data_args>.size), dir: SSS_DIR_UP, offset: 0, avail: 1,
                         buffered: 1, now_ns: 0, flags: 0, slice_count: 0, slices: nil)
var out = sss_data_result()
let onData = swiftStage.hooks.on_data!
let swiftInst = swiftStage.inst
measure("Swift stage via StageKit: bytecap on_data") {
    for _ in 0..<iterations {
        out.granted = 1
        _ = onData(swiftInst, &conn, &swiftSlot, &args, &out)
    }
}

// C: the allowlist example's open hook (one CIDR block to match).
let cStage = instance("allowlist", #"{"allow": ["127.0.0.0/8"]}"#)
let onOpen = cStage.hooks.on_open!
let cInst = cStage.inst
var cSlot: UnsafeMutableRawPointer? = nil
measure("C stage: allowlist on_open (1 block, atomic counter)") {
    for _ in 0..<iterations {
        _ = onOpen(cInst, &conn, &cSlot, &openResult)
    }
}

// Swift (StageKit): bytecap's open hook allocates per-connection state; shown for contrast.
let swiftOpen = swiftStage.hooks.on_open!
let swiftClose = swiftStage.hooks.on_close!
var info = sss_close_info()
measure("Swift stage via StageKit: bytecap on_open + on_close (allocates)", calls: iterations / 10) {
    for _ in 0..<(iterations / 10) {
        var slot: UnsafeMutableRawPointer? = nil
        _ = swiftOpen(swiftInst, &conn, &slot, &openResult)
        swiftClose(swiftInst, &conn, slot, &info)
    }
}

// The host's per-chunk path: ConnectionChain.offer with one data stage, and with none.
for (label, stages) in [("ConnectionChain.offer, 1 Swift data stage", [swiftStage]), ("ConnectionChain.offer, no data stage", [])] {
    let chain = StageChain(stages: stages, pipeline: "bench", listener: "x")
    let c = ConnectionChain(chain: chain, id: 1, threadIndex: 0, peer: peer, local: sss_addr(), acceptedAt: 0)
    _ = c.open(now: 0)
    var received: UInt64 = 0
    measure(label, calls: iterations / 10) {
        for _ in 0..<(iterations / 10) {
            received &+= 1
            _ = c.offer(direction: SSS_DIR_UP, received: received, eof: false, buffered: 1, now: 0, reoffer: false)
        }
    }
    c.close(.init(cause: SSS_CLOSE_CLIENT_EOF), now: 0)
}

import Foundation

/// The fuzz targets, by name.
let fuzzTargets: [String: @Sendable (UnsafePointer<UInt8>?, Int) -> Int32] = [
    "pipeline": fuzzPipeline,
    "abi": fuzzABI,
]

/// One executable for every target (one instrumented build, not one per target).
///
/// Built by `scripts/fuzz.sh` with `-sanitize=fuzzer,address -DFUZZING`: libFuzzer supplies
/// `main` and calls this entry; `SSS_FUZZ_TARGET` picks the target. In an ordinary build the
/// same code is a replay tool, `sssonector-fuzz TARGET FILE-OR-FOLDER...`, which runs every
/// input once through the target (the tests replay the kept corpus this way).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedTarget(data, size)
}

private let selectedTarget: @Sendable (UnsafePointer<UInt8>?, Int) -> Int32 = {
    let name = ProcessInfo.processInfo.environment["SSS_FUZZ_TARGET"] ?? ""
    guard let target = fuzzTargets[name] else {
        FileHandle.standardError.write(Data("set SSS_FUZZ_TARGET to one of: \(fuzzTargets.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

#if !FUZZING
@main
struct ReplayInputs {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = fuzzTargets[name] else {
            FileHandle.standardError.write(Data("usage: sssonector-fuzz \(fuzzTargets.keys.sorted().joined(separator: "|")) FILE-OR-FOLDER...\n".utf8))
            exit(2)
        }
        FuzzReplay.run(target, inputs: Array(arguments.dropFirst()))
    }
}
#endif

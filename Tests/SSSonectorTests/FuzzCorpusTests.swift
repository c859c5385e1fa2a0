import Foundation
import Testing

/// Every input the fuzzers kept (`Fuzz/corpus/<target>`, crashes included once fixed) replayed
/// through the same target code, built without libFuzzer: a regression suite that grows with
/// every fuzzing run (`scripts/fuzz.sh`).
@Suite struct FuzzCorpusTests {
    func replay(_ target: String, environment: [String: String] = [:]) throws {
        let corpus = "\(TestEnvironment.repositoryRoot)/Fuzz/corpus/\(target)"
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).count
        #expect(inputs > 0, "the \(target) corpus is empty")
        let replayed = try ChildProcess.run(TestEnvironment.binPath("sssonector-fuzz"), [target, corpus],
                                            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        #expect(!replayed.bySignal && replayed.status == 0, "sssonector-fuzz \(target) ended with \(replayed.status)")
        #expect(replayed.stdout.contains("replayed \(inputs) inputs"), "\(replayed.stdout)")
    }

    @Test func thePipelineCorpusReplaysClean() throws {
        try replay("pipeline")
    }

    @Test func theABICorpusReplaysClean() throws {
        try replay("abi", environment: ["SSS_FUZZ_STAGE": try CPlugins.fuzzStage()])
    }
}

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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnvironment.binPath("sssonector-fuzz"))
        p.arguments = [target, corpus]
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "sssonector-fuzz \(target) ended with \(p.terminationStatus)")
        #expect(text.contains("replayed \(inputs) inputs"), "\(text)")
    }

    @Test func thePipelineCorpusReplaysClean() throws {
        try replay("pipeline")
    }

    @Test func theABICorpusReplaysClean() throws {
        try replay("abi", environment: ["SSS_FUZZ_STAGE": try CPlugins.fuzzStage()])
    }
}

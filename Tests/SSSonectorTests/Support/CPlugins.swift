import Locking
import Foundation
import Synchronization

/// Builds the C libraries the tests load (the example stage and the ABI fixtures) with a plain
/// C compiler, once per test process, into a private folder.
enum CPlugins {
    private static let built = Locked<[String: String]>([:])
    private static let directory = TestEnvironment.temporaryDirectory()

    /// The ABI fixture built with `variant` (a -D flag, or nil for the plain one);
    /// `frozenAt` ("1.0", "1.1") builds against that release's frozen header copy.
    static func fixture(_ variant: String?, frozenAt: String? = nil) throws -> String {
        let root = TestEnvironment.repositoryRoot
        let include = frozenAt.map { "\(root)/Tests/Fixtures/abi-\($0)" } ?? "\(root)/Sources/StageABI/include"
        let name = "libfixture-\(variant ?? "plain")\(frozenAt.map { "-frozen-\($0)" } ?? "").so"
        return try build(name, source: "\(root)/Tests/Fixtures/fixture_stage.c", include: include,
                         defines: variant.map { ["-D\($0)"] } ?? [])
    }

    /// The stage that breaks the ABI on purpose (`Tests/Fixtures/misbehaving_stage.c`).
    static func misbehaving() throws -> String {
        let root = TestEnvironment.repositoryRoot
        return try build("libmisbehaving.so", source: "\(root)/Tests/Fixtures/misbehaving_stage.c",
                         include: "\(root)/Sources/StageABI/include", defines: [])
    }

    /// The tape-driven stage of the ABI fuzz target (`Fuzz/fuzz_stage.c`).
    static func fuzzStage() throws -> String {
        let root = TestEnvironment.repositoryRoot
        return try build("libfuzzstage.so", source: "\(root)/Fuzz/fuzz_stage.c",
                         include: "\(root)/Sources/StageABI/include", defines: [])
    }

    /// The allowlist example stage in C.
    static func allowlist() throws -> String {
        let root = TestEnvironment.repositoryRoot
        return try build("liballowlist.so", source: "\(root)/Plugins/examples/allowlist/allowlist.c",
                         include: "\(root)/Sources/StageABI/include", defines: [])
    }

    private static func build(_ name: String, source: String, include: String, defines: [String]) throws -> String {
        try built.withLock { cache in
            if let path = cache[name] { return path }
            let output = "\(directory)/\(name)"
            let compiled = try ChildProcess.run("/usr/bin/env", ["cc", "-std=c11", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                                                                 "-fvisibility=hidden", "-I", include] + defines + [source, "-o", output])
            guard compiled.status == 0, !compiled.bySignal else {
                throw CompileError(message: "cc failed for \(name): \(compiled.stderr)")
            }
            cache[name] = output
            return output
        }
    }

    struct CompileError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

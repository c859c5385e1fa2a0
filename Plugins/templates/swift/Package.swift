// swift-tools-version: 6.0
// __NAME__: a SSSonector stage in Swift, written by `sssonector plugin new`.
import PackageDescription

let package = Package(
    name: "__NAME__",
    products: [
        // `swift build` writes .build/debug/lib__NAME__.so, the library the host loads.
        .library(name: "__NAME__", type: .dynamic, targets: ["__NAME__"]),
    ],
    dependencies: [
        __DEPENDENCY__,
    ],
    targets: [
        // A stage depends on StageKit only, never on the host.
        .target(name: "__NAME__", dependencies: [.product(name: "StageKit", package: "__PACKAGE__")]),
        // The tests load the built .so through the host's real loader (StageTestKit); they do
        // not link the stage's target (its entry symbol would exist twice).
        .testTarget(name: "__NAME__Tests", dependencies: [.product(name: "StageTestKit", package: "__PACKAGE__")]),
    ]
)

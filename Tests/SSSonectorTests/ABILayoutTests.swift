import ABIGoldenLayout
import StageABI
import Testing

/// The golden layout table is compiled with the package: a moved field or a changed constant
/// fails the build. These tests check that the table is the one for this header.
@Suite struct ABILayoutTests {
    @Test func goldenTableCoversTheHeader() {
        // Every struct size and alignment, field offset and constant of ABI 1.0.
        #expect(sss_abi_golden_checked_items() >= 230)
        #expect(UInt32(sss_abi_golden_major()) == SSS_ABI_MAJOR)
        #expect(UInt32(sss_abi_golden_minor()) == SSS_ABI_MINOR)
    }

    @Test func swiftSeesTheSameLayoutAsC() {
        #expect(MemoryLayout<sss_conn>.size == 160)  // 144 in 1.0; 1.1 appended peer_identity
        #expect(MemoryLayout<sss_stage_type>.size == 136)  // 128 in 1.1; 1.2 appended on_upstream_status
        #expect(MemoryLayout<sss_upstream_result>.size == 48)  // 40 in 1.1; 1.2 appended flags
        #expect(MemoryLayout<sss_host_api>.size == 112)  // 104 in 1.2; 1.3 appended conn_post_verdict
        #expect(MemoryLayout<sss_close_info>.size == 104)  // 96 in 1.2; 1.3 appended flags
        #expect(MemoryLayout<sss_open_result>.size == 48)  // 32 in 1.2; 1.3 appended the pending fields
        #expect(MemoryLayout<sss_data_args>.size == 56)
    }
}

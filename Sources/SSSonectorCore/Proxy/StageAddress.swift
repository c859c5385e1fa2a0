import NIOCore
import StageABI

extension Optional where Wrapped == SocketAddress {
    /// The address as stages see it (`sss_addr`): family, port, and 4 or 16 address bytes.
    var stageAddress: sss_addr {
        var out = sss_addr()
        switch self {
        case .v4(let v4)?:
            out.family = UInt16(SSS_AF_INET)
            out.port = UInt16(bigEndian: v4.address.sin_port)
            withUnsafeBytes(of: v4.address.sin_addr) { src in
                withUnsafeMutableBytes(of: &out.addr) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src.prefix(4))) }
            }
        case .v6(let v6)?:
            out.family = UInt16(SSS_AF_INET6)
            out.port = UInt16(bigEndian: v6.address.sin6_port)
            out.scope_id = v6.address.sin6_scope_id
            withUnsafeBytes(of: v6.address.sin6_addr) { src in
                withUnsafeMutableBytes(of: &out.addr) { dst in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src.prefix(16))) }
            }
        default:
            break
        }
        return out
    }
}

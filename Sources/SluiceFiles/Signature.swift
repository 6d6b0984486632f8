import SluiceSystem
/// How a file is recognised: the device and inode it lives on, and the hash of its first
/// `length` (≤ 1024) bytes. The hash tells a file from a new one that reuses the inode, and a
/// truncated-and-rewritten file from the one we were reading.
public struct FileIdentity: Hashable, Sendable, CustomStringConvertible {
    public var dev: UInt64
    public var inode: UInt64
    public init(dev: UInt64, inode: UInt64) {
        self.dev = dev
        self.inode = inode
    }
    public var description: String { "\(dev):\(inode)" }
}

public struct FileSignature: Equatable, Sendable {
    public static let maxLength = 1024
    public var hash: UInt64
    public var length: Int
    public init(hash: UInt64, length: Int) {
        self.hash = hash
        self.length = length
    }
    public static let empty = FileSignature(hash: FNV1a.hash([]), length: 0)

    /// Reads the signature of the file open as `fd`, over its first `min(size, 1024)` bytes,
    /// or over exactly `length` bytes if given (to compare with a known signature).
    static func read(fd: Int32, length: Int = maxLength) -> Result<FileSignature, Errno> {
        var buf = [UInt8](repeating: 0, count: length)
        let r = buf.withUnsafeMutableBytes { Sys.preadFull(fd, $0.baseAddress!, length, 0) }
        switch r {
        case .failure(let e): return .failure(e)
        case .success(let n):
            return .success(buf.withUnsafeBytes { FileSignature(hash: FNV1a.hash(UnsafeRawBufferPointer(rebasing: $0[0..<n])), length: n) })
        }
    }
}

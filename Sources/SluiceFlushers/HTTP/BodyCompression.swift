import CSnappy
import CZstd
import CompressNIO
import NIOCore
import SluiceCore

/// How a request body is compressed on the wire, with the `Content-Encoding` it is sent under.
/// gzip through compress-nio (zlib); zstd and Snappy (block format, as Loki and Prometheus use)
/// through Debian's libzstd and libsnappy, which no listed Swift package wraps.
public enum BodyCompression: String, Sendable, CaseIterable {
    case none = ""
    case gzip
    case zstd
    case snappy

    /// The config value (`Compression: gzip`); empty or `none` is no compression.
    public init?(configValue: String) {
        switch configValue.lowercased() {
        case "", "none": self = .none
        case "gzip": self = .gzip
        case "zstd": self = .zstd
        case "snappy": self = .snappy
        default: return nil
        }
    }

    /// The `Content-Encoding` header value, nil for none.
    public var contentEncoding: String? { self == .none ? nil : rawValue }

    /// `bytes` compressed (or copied as they are for none) into a new buffer.
    public func compress(_ bytes: UnsafeRawBufferPointer) throws(FlushError) -> ByteBuffer {
        try compress(bytes, reusing: nil)
    }

    /// `bytes` compressed (or copied as they are for none) into a buffer of `pool` (lent to it
    /// again once filled), or a new one without a pool or for gzip, which makes its own.
    func compress(_ bytes: UnsafeRawBufferPointer, reusing pool: BodyBufferPool?) throws(FlushError) -> ByteBuffer {
        func buffer(_ capacity: Int) -> ByteBuffer { pool?.take(capacity: capacity) ?? ByteBufferAllocator().buffer(capacity: capacity) }
        var b: ByteBuffer
        switch self {
        case .none:
            b = buffer(bytes.count)
            b.writeBytes(bytes)
        case .gzip:
            var input = ByteBufferAllocator().buffer(capacity: bytes.count)
            input.writeBytes(bytes)
            do { return try input.compress(with: .gzip()) } catch { throw FlushError("gzip compression failed: \(error)") }
        case .zstd:
            let bound = ZSTD_compressBound(bytes.count)
            b = buffer(bound)
            var failure: String?
            b.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                let n = ZSTD_compress(out.baseAddress, bound, bytes.baseAddress, bytes.count, 1)
                if ZSTD_isError(n) != 0 {
                    failure = String(cString: ZSTD_getErrorName(n))
                    return 0
                }
                return n
            }
            if let failure { throw FlushError("zstd compression failed: \(failure)") }
        case .snappy:
            let bound = snappy_max_compressed_length(bytes.count)
            b = buffer(bound)
            var status = SNAPPY_OK
            b.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                var n = bound
                status = snappy_compress(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count,
                                         out.baseAddress?.assumingMemoryBound(to: CChar.self), &n)
                return status == SNAPPY_OK ? n : 0
            }
            if status != SNAPPY_OK { throw FlushError("snappy compression failed (status \(status.rawValue))") }
        }
        pool?.lend(b)
        return b
    }

    /// `buffer` compressed; for none, `buffer` itself (no copy).
    public func compress(_ buffer: ByteBuffer) throws(FlushError) -> ByteBuffer {
        if self == .none { return buffer }
        return try compressing { buffer.withUnsafeReadableBytes($0) }
    }

    /// `bytes` compressed; see `compress(_:)`.
    public func compress(_ bytes: [UInt8]) throws(FlushError) -> ByteBuffer {
        try compressing { bytes.withUnsafeBytes($0) }
    }

    /// `compress(_:)` of the bytes `access` lends out.
    private func compressing(_ access: ((UnsafeRawBufferPointer) -> Void) -> Void) throws(FlushError) -> ByteBuffer {
        var r: Result<ByteBuffer, FlushError> = .failure(FlushError("not compressed"))
        access { p in
            do throws(FlushError) { r = .success(try compress(p)) } catch { r = .failure(error) }
        }
        return try r.get()
    }

    /// The inverse, for receivers (tests) and for reading what was sent; at most `limit` bytes out.
    public func decompress(_ buffer: ByteBuffer, limit: Int = 1 << 30) throws(FlushError) -> [UInt8] {
        switch self {
        case .none:
            return Array(buffer.readableBytesView)
        case .gzip:
            var input = buffer
            do {
                var out = try input.decompress(with: .gzip(), maxSize: limit)
                return out.readBytes(length: out.readableBytes) ?? []
            } catch { throw FlushError("gzip decompression failed: \(error)") }
        case .zstd:
            let input = Array(buffer.readableBytesView)
            let size = input.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
            guard size != ZSTD_CONTENTSIZE_ERROR, size != ZSTD_CONTENTSIZE_UNKNOWN, size <= UInt64(limit) else {
                throw FlushError("zstd frame without a known size under the limit")
            }
            var out = [UInt8](repeating: 0, count: Int(size))
            let n = out.withUnsafeMutableBytes { o in input.withUnsafeBytes { i in ZSTD_decompress(o.baseAddress, o.count, i.baseAddress, i.count) } }
            if ZSTD_isError(n) != 0 { throw FlushError("zstd decompression failed: \(String(cString: ZSTD_getErrorName(n)))") }
            return Array(out[0..<n])
        case .snappy:
            let input = Array(buffer.readableBytesView)
            var size = 0
            let st = input.withUnsafeBytes { snappy_uncompressed_length($0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count, &size) }
            guard st == SNAPPY_OK, size <= limit else { throw FlushError("snappy: bad block header") }
            var out = [UInt8](repeating: 0, count: size)
            var n = size
            let st2 = out.withUnsafeMutableBytes { o in
                input.withUnsafeBytes { i in
                    snappy_uncompress(i.baseAddress?.assumingMemoryBound(to: CChar.self), i.count, o.baseAddress?.assumingMemoryBound(to: CChar.self), &n)
                }
            }
            guard st2 == SNAPPY_OK else { throw FlushError("snappy decompression failed") }
            return Array(out[0..<n])
        }
    }
}

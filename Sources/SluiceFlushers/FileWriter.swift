#if canImport(Glibc)
import Glibc
#endif
import SluiceCore

/// Writes bytes to a file descriptor completely, remembering how far it got when a write fails,
/// so that a retry continues where the failure left off and writes nothing twice.
struct ResumableWriter {
    /// Encoded bytes not yet written, and how many of them were.
    let buffer = ByteBuffer(capacity: 1 << 20)
    var written = 0
    var hasPending: Bool { written < buffer.count }

    mutating func reset() {
        buffer.clear()
        written = 0
    }

    /// Writes what remains of `buffer` to `fd`.
    mutating func drain(to fd: Int32) throws(WriteError) {
        while written < buffer.count {
            let n = write(fd, buffer.base + written, buffer.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 100)
                    continue
                }
                throw WriteError(code: errno)
            }
            written += n
        }
    }
}

public struct WriteError: Error, CustomStringConvertible {
    public var code: Int32
    public var description: String { String(cString: strerror(code)) + " (errno \(code))" }
}

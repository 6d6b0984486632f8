import Glibc

/// A pipe used to wake a thread blocked in poll(2): `fd` is the end to poll.
public final class Waker: Sendable {
    public let fd: Int32
    let writeFD: Int32
    public init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 { fds = [-1, -1] }
        for f in fds where f >= 0 {
            _ = fcntl(f, F_SETFD, FD_CLOEXEC)
            _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK)
        }
        fd = fds[0]
        writeFD = fds[1]
    }
    deinit {
        if fd >= 0 { close(fd) }
        if writeFD >= 0 { close(writeFD) }
    }
    public func wake() {
        var one: UInt8 = 1
        _ = write(writeFD, &one, 1)
    }
    public func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while buf.withUnsafeMutableBytes({ read(fd, $0.baseAddress!, 64) }) > 0 {}
    }
}

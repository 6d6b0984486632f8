import SluiceCore
import Synchronization

/// Free encode buffers, reused so that a 1 MiB buffer is not allocated per request.
final class BufferPool: Sendable {
    private let free = Mutex<[OutputBuffer]>([])
    let keep: Int
    init(keep: Int) { self.keep = keep }
    func take() -> OutputBuffer {
        if let b = free.withLock({ $0.popLast() }) {
            b.clear()
            return b
        }
        return OutputBuffer(capacity: 1 << 20)
    }
    func put(_ b: OutputBuffer) {
        free.withLock { f in if f.count < keep { f.append(b) } }
    }
}

import Foundation
import Glibc
@testable import SluiceSystem
import Synchronization
import Testing

/// `startThread`: the thread's name, and what happens when a thread cannot be created.
@Suite struct ThreadsTests {
    final class Seen: Sendable {
        let name = Mutex<String?>(nil)
        let ranOnCaller = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)
    }

    /// The calling thread's name, as the kernel keeps it.
    static func currentName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    @Test("The thread is named after its first 15 bytes, cut at a UTF-8 character boundary")
    func named() {
        for (name, expected) in [("in:pipeline-with-a-long-name", "in:pipeline-wit"), ("proc:ä", "proc:ä"), ("12345678901234é", "12345678901234")] {
            let seen = Seen()
            startThread(name: name) {
                seen.name.withLock { $0 = ThreadsTests.currentName() }
                seen.done.signal()
            }
            #expect(seen.done.wait(timeout: .now() + 5) == .success)
            #expect(seen.name.withLock { $0 } == expected)
        }
    }

    @Test("EAGAIN is retried: the body runs once, on a thread of its own, after the creation succeeds")
    func retriedOnEAGAIN() {
        let calls = Atomic<Int>(0)
        let caller = pthread_self()
        let seen = Seen()
        let rc = startThread(name: "retry", attempts: 5, retryDelayMicros: 1_000, create: { t, a, f, arg in
            if calls.add(1, ordering: .relaxed).newValue < 3 { return EAGAIN }
            return pthread_create(t, a, f, arg)
        }) {
            seen.ranOnCaller.store(pthread_equal(pthread_self(), caller) != 0, ordering: .relaxed)
            seen.done.signal()
        }
        let made = calls.load(ordering: .relaxed)
        #expect(rc == 0)
        #expect(made == 3)
        #expect(seen.done.wait(timeout: .now() + 5) == .success)
        let inline = seen.ranOnCaller.load(ordering: .relaxed)
        #expect(!inline, "the body ran inline")
    }

    @Test("A creation that keeps failing returns its error after the attempts (the public startThread then exits); other errors are not retried; the body never runs")
    func givesUp() {
        for (error, attempts) in [(EAGAIN, 4), (EINVAL, 1)] {
            let calls = Atomic<Int>(0)
            let ran = Atomic<Bool>(false)
            let rc = startThread(name: "fail", attempts: 4, retryDelayMicros: 1_000, create: { _, _, _, _ in
                calls.add(1, ordering: .relaxed)
                return error
            }) { ran.store(true, ordering: .relaxed) }
            #expect(rc == error)
            let made = calls.load(ordering: .relaxed), didRun = ran.load(ordering: .relaxed)
            #expect(made == attempts)
            #expect(!didRun)
        }
    }
}

/// `Sys.nanos(seconds:)`: a configured interval as nanoseconds, never an overflow trap.
@Suite struct IntervalTests {
    @Test func secondsSaturateAndNeverTrap() {
        #expect(Sys.nanos(seconds: 1.5) == 1_500_000_000)
        #expect(Sys.nanos(seconds: 0) == 0 && Sys.nanos(seconds: -3) == 0 && Sys.nanos(seconds: .nan) == 0)
        #expect(Sys.nanos(seconds: 1e300) == 1_000_000_000_000_000_000)
        #expect(Sys.nanos(seconds: .infinity) == 1_000_000_000_000_000_000)
        // A deadline from now stays in range.
        #expect(Sys.monotonicNanos().addingReportingOverflow(Sys.nanos(seconds: 1e300)).overflow == false)
    }
}

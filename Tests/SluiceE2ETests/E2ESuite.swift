import Glibc
import Foundation
import SluiceTesting
import Testing

/// End-to-end tests: each test runs the real `sluice` binary ($SLUICE_BIN, or the one built next
/// to the test bundle) in its own temporary directory against real files, and reads what
/// flusher_file wrote. They run one at a time (the machine has 2 cores and timings matter).
@Suite("sluice end to end", .serialized, .timeLimit(.minutes(4)))
struct E2E {}

/// Prints a figure or a finding, tagged so it is easy to grep in the test output.
func note(_ s: String) {
    print("[e2e] " + s)
}

/// Seconds to wait after the expected lines arrived, for duplicates to show up if there are any.
let settleMs = 1500

extension E2EScenario {
    /// Starts sluice and waits until `pipelines` inputs have started.
    @discardableResult
    func startAndWait(pipelines: Int = 1, environment: [String: String] = [:], extraArguments: [String] = [],
                      commandPrefix: [String] = [], binary: String? = nil, shutdownTimeout: Double? = nil,
                      logLevel: String = "info") throws -> SluiceProcess {
        let p = try start(environment: environment, extraArguments: extraArguments, commandPrefix: commandPrefix,
                          binary: binary, logLevel: logLevel, shutdownTimeout: shutdownTimeout)
        let ok = waitForLog("Input started.", count: pipelines, timeout: 15)
        if !ok { note("\(name): sluice did not start its inputs; stderr:\n\(stderr)") }
        try #require(ok, "sluice started \(pipelines) input(s)")
        return p
    }
}

/// Waits until `path` holds at least `lines` lines; prints the count on timeout.
@discardableResult
func waitForLines(_ path: String, _ lines: Int, timeout: Double = 20, _ what: String = "") -> Bool {
    let ok = waitUntil(timeout: timeout) { countLines(path) >= lines }
    if !ok { note("timeout waiting for \(lines) lines in \(what.isEmpty ? path : what): have \(countLines(path))") }
    return ok
}

/// Running sluice as nobody (root ignores permissions): the binary copied into the scenario so
/// that nobody can execute it wherever the build lives, the data dir and `outDir` owned by nobody.
struct AsNobody {
    static let uid: uid_t = 65534
    static let prefix = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    let binary: String
    let outDir: String

    init(_ s: E2EScenario) throws {
        try #require(access("/usr/bin/setpriv", X_OK) == 0, "setpriv is needed")
        try #require(getuid() == 0, "the test runs as root to switch to nobody")
        chmod(s.root, 0o755)
        chmod(s.configDir, 0o755)
        binary = s.root + "/sluice"
        try #require(shell("cp '\(SluiceProcess.binaryPath)' '\(binary)' && chmod 755 '\(binary)'") == 0)
        chown(s.dataDir, Self.uid, Self.uid)
        outDir = s.dir("out")
        chown(outDir, Self.uid, Self.uid)
    }

    /// Undoes what the test made unreadable, so cleanup can remove the tree.
    static func restorePermissions(_ s: E2EScenario) {
        _ = shell("chmod -R u+rwX '\(s.root)'")
    }
}

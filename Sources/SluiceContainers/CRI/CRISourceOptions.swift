#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension CRISource {
    public struct Options: Sendable {
        /// `--cri-socket`; nil: `CONTAINERD_SOCK_PATH` from `environment`, else the first default that exists.
        public var socketPath: String?
        /// Where `CONTAINERD_SOCK_PATH` is looked up; nil: this process's environment.
        public var environment: [String: String]?
        /// Host root prefix for finding default sockets and reading host paths.
        public var hostRoot: String
        /// containerd state dir (nil: the socket's directory).
        public var stateDir: String?
        /// Re-list interval without a CRI event stream (the incumbent's docker_config_update_interval).
        public var pollInterval: Duration
        /// Full re-list interval while the CRI event stream works.
        public var resyncInterval: Duration
        /// Deadline of each unary call.
        public var callTimeout: Duration
        /// How often to look for a socket that is absent.
        public var absentRecheckInterval: Duration
        /// Backoff after a failed session: doubles from `backoffInitial` up to `backoffMax`.
        public var backoffInitial: Duration
        public var backoffMax: Duration
        /// Use event streams (CRI, then containerd's); false: poll only.
        public var useEvents: Bool

        public init(
            socketPath: String? = nil, environment: [String: String]? = nil, hostRoot: String = "/",
            stateDir: String? = nil, pollInterval: Duration = .seconds(1), resyncInterval: Duration = .seconds(30),
            callTimeout: Duration = .seconds(5), absentRecheckInterval: Duration = .seconds(2),
            backoffInitial: Duration = .milliseconds(500), backoffMax: Duration = .seconds(30), useEvents: Bool = true
        ) {
            self.socketPath = socketPath
            self.environment = environment
            self.hostRoot = hostRoot
            self.stateDir = stateDir
            self.pollInterval = pollInterval
            self.resyncInterval = resyncInterval
            self.callTimeout = callTimeout
            self.absentRecheckInterval = absentRecheckInterval
            self.backoffInitial = backoffInitial
            self.backoffMax = backoffMax
            self.useEvents = useEvents
        }

        var socketEnvironment: [String: String] {
            if let e = environment { return e }
            guard let v = getenv(CRISocket.environmentVariable) else { return [:] }
            return [CRISocket.environmentVariable: String(cString: v)]
        }
    }

    /// How the source keeps up with the runtime.
    public enum Mode: String, Sendable {
        case disconnected
        /// CRI GetContainerEvents + periodic re-list.
        case criEvents
        /// Poll every `pollInterval`, woken early by containerd's event stream.
        case containerdEventsAndPoll
        /// Poll every `pollInterval`.
        case poll
    }

    /// What the source is doing, for `sluice explain` and tests.
    public struct Status: Sendable {
        public var socketPath: String?
        public var connected: Bool = false
        public var mode: Mode = .disconnected
        public var runtimeName: String = ""
        public var runtimeVersion: String = ""
        /// Sessions started (connection attempts that found a socket).
        public var sessions: Int = 0
        /// Sessions that ended with an error.
        public var failures: Int = 0
        public var lastError: String?
        /// Times the absence of a socket was reported (once per absence).
        public var absentReports: Int = 0
        /// Successful listings.
        public var syncs: Int = 0
        /// Re-lists that failed within a session (retried without ending it).
        public var relistFailures: Int = 0
    }
}

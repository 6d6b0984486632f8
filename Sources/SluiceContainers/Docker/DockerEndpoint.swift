/// Where the Docker Engine API listens: `DOCKER_HOST` / `--docker-host`.
///
/// Accepted forms: `unix:///var/run/docker.sock`, a bare absolute socket path, `tcp://host:port`
/// (plain HTTP; TLS is not supported), `http://host:port`.
public enum DockerEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public static let defaultHost = "unix:///var/run/docker.sock"

    /// The endpoint from an explicit option, else `DOCKER_HOST` in `environment`, else the default socket.
    /// An empty option or variable counts as absent.
    public static func resolve(option: String?, environment: [String: String]) throws(DockerError) -> DockerEndpoint {
        if let option, !option.isEmpty { return try parse(option) }
        if let env = environment["DOCKER_HOST"], !env.isEmpty { return try parse(env) }
        return try parse(defaultHost)
    }

    public static func parse(_ text: String) throws(DockerError) -> DockerEndpoint {
        let s = text.trimmingSpaces()
        if s.hasPrefix("unix://") {
            let path = String(s.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw DockerError.invalidHost(text, "a unix socket path must be absolute") }
            return .unix(path: path)
        }
        if s.hasPrefix("/") { return .unix(path: s) }
        for scheme in ["tcp://", "http://"] where s.hasPrefix(scheme) {
            var rest = Substring(s.dropFirst(scheme.count))
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            let host: Substring
            var port = 2375
            if rest.hasPrefix("[") {  // [::1]:2375
                guard let close = rest.firstIndex(of: "]") else { throw DockerError.invalidHost(text, "unclosed [") }
                host = rest[rest.index(after: rest.startIndex)..<close]
                let after = rest[rest.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw DockerError.invalidHost(text, "bad port") }
                    port = p
                }
            } else if let colon = rest.lastIndex(of: ":") {
                host = rest[..<colon]
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                    throw DockerError.invalidHost(text, "bad port")
                }
                port = p
            } else {
                host = rest
            }
            guard !host.isEmpty else { throw DockerError.invalidHost(text, "missing host") }
            return .tcp(host: String(host), port: port)
        }
        if s.hasPrefix("https://") || s.hasPrefix("ssh://") || s.hasPrefix("npipe://") || s.hasPrefix("fd://") {
            throw DockerError.invalidHost(text, "only unix:// and tcp:// (plain HTTP) are supported")
        }
        throw DockerError.invalidHost(text, "expected unix:///path or tcp://host:port")
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        }
    }
}

fileprivate extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

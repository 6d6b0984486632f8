/// A producer of container facts (Docker, CRI, pod log dir, static file). It runs until cancelled,
/// reporting what it sees to the registry; it never throws out of `run` (a runtime that is absent
/// or failing is logged and retried with backoff inside).
public protocol ContainerSource: Sendable {
    var kind: ContainerRuntimeKind { get }
    func run(registry: ContainerRegistry) async
}

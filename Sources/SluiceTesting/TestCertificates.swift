/// A test CA and a server certificate for 127.0.0.1 / localhost signed by it, made with openssl
/// in `dir`: PEM paths of the CA, the server certificate and its key. Nil when openssl failed.
public func makeTestCertificates(in dir: String) -> (ca: String, cert: String, key: String)? {
    let cmd = """
        cd '\(dir)' && \
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=sluice-test-ca' 2>/dev/null && \
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null && \
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && \
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
        """
    guard shell(cmd) == 0 else { return nil }
    return (dir + "/ca.pem", dir + "/server.pem", dir + "/server.key")
}

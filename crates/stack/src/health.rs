//! Health probes that speak each service's own protocol.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// True when something accepts connections on the port.
pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&addr(port), TIMEOUT).is_ok()
}

/// True when the port can be bound, i.e. nobody listens on it.
pub(crate) fn port_free(port: u16) -> bool {
    TcpListener::bind(addr(port)).is_ok() && !port_open(port)
}

/// Sends a Kafka ApiVersions (v0) request and checks the answer's
/// correlation id and error code, so a healthy broker is one that speaks Kafka.
pub(crate) fn kafka_api_versions(port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr(port), TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let client_id = b"contrail-health";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api_key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api_version
    body.extend_from_slice(&7i32.to_be_bytes()); // correlation_id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    stream.write_all(&request).map_err(|e| e.to_string())?;
    let mut header = [0u8; 10];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("reading ApiVersions response: {e}"))?;
    let [_, _, _, _, c0, c1, c2, c3, e0, e1] = header;
    let correlation = i32::from_be_bytes([c0, c1, c2, c3]);
    let error = i16::from_be_bytes([e0, e1]);
    if correlation != 7 {
        return Err(format!(
            "ApiVersions answered with correlation id {correlation}, expected 7"
        ));
    }
    if error != 0 {
        return Err(format!("ApiVersions answered with error code {error}"));
    }
    Ok(())
}

/// Sends an HTTP request and returns the status code.
pub(crate) fn http_status(port: u16, method: &str, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr(port), TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_not_free() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!port_free(port));
        assert!(port_open(port));
        // Something that accepts but does not speak Kafka is not healthy.
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.write_all(b"hello, not kafka");
        });
        assert!(kafka_api_versions(port).is_err());
    }
}

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

/// The largest Kafka response the probe reads: a one-node cluster's
/// ApiVersions and topic-less Metadata answers are a few hundred bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// One request on a fresh connection (request header v1, response header
/// v0, as ApiVersions v0 and Metadata v4 use), returning the response body.
fn kafka_round_trip(port: u16, api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect_timeout(&addr(port), TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let client_id = b"contrail-health";
    let mut req = Vec::new();
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&version.to_be_bytes());
    req.extend_from_slice(&correlation.to_be_bytes());
    req.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    req.extend_from_slice(client_id);
    req.extend_from_slice(body);
    let mut framed = (req.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    stream.write_all(&framed).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| format!("reading the response: {e}"))?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(|_| "a negative response length".to_string())?;
    if !(4..=MAX_RESPONSE).contains(&len) {
        return Err(format!("a response of {len} bytes is not a health answer"));
    }
    let mut resp = vec![0u8; len];
    stream
        .read_exact(&mut resp)
        .map_err(|e| format!("reading the response: {e}"))?;
    let mut r = Reader(&resp);
    let got = r.i32()?;
    if got != correlation {
        return Err(format!("answered with correlation id {got}, expected {correlation}"));
    }
    Ok(r.0.to_vec())
}

/// A bounds-checked reader over a response body.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("the response ended early".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A (nullable) string; its bytes are skipped.
    fn skip_string(&mut self) -> Result<(), String> {
        let len = self.i16()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }
}

/// A broker is healthy when it speaks Kafka (ApiVersions v0 answers without
/// error) and it is a working cluster member (Metadata v4 lists at least
/// one broker and an elected controller). Returns a one-line description.
pub(crate) fn kafka_probe(port: u16) -> Result<String, String> {
    let body = kafka_round_trip(port, 18, 0, 7, &[]).map_err(|e| format!("ApiVersions: {e}"))?;
    let error = Reader(&body).i16().map_err(|e| format!("ApiVersions: {e}"))?;
    if error != 0 {
        return Err(format!("ApiVersions answered with error code {error}"));
    }
    // Metadata v4: no topics (an empty array), no auto-creation.
    let body = kafka_round_trip(port, 3, 4, 8, &[0, 0, 0, 0, 0]).map_err(|e| format!("Metadata: {e}"))?;
    let (brokers, controller) = metadata_v4_summary(&body).map_err(|e| format!("Metadata: {e}"))?;
    if brokers == 0 || controller < 0 {
        return Err(format!(
            "Metadata lists {brokers} broker(s) and controller {controller}: the cluster is not formed yet"
        ));
    }
    Ok(format!("{brokers} broker(s), controller {controller}"))
}

/// The broker count and controller id of a Metadata v4 response body.
fn metadata_v4_summary(body: &[u8]) -> Result<(usize, i32), String> {
    let mut r = Reader(body);
    r.i32()?; // throttle_time_ms
    let brokers = r.i32()?;
    let brokers = usize::try_from(brokers).map_err(|_| format!("a broker count of {brokers}"))?;
    for _ in 0..brokers {
        r.i32()?; // node_id
        r.skip_string()?; // host
        r.i32()?; // port
        r.skip_string()?; // rack
    }
    r.skip_string()?; // cluster_id
    Ok((brokers, r.i32()?))
}

/// Who listens on a TCP port of this machine, from /proc: `pid 1234 (java)`.
/// `None` when /proc does not tell (another user's process, another
/// network namespace, or a non-Linux system).
pub(crate) fn port_owner(port: u16) -> Option<String> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|l| inodes.iter().any(|i| l.to_string_lossy() == format!("socket:[{i}]")))
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", comm.trim()));
        }
    }
    None
}

/// The socket inodes listening on `port` in a /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1)?.rsplit(':').next()?;
            // State 0A is LISTEN.
            (local_port == want && *cols.get(3)? == "0A").then(|| cols.get(9).map(|i| i.to_string()))?
        })
        .collect()
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
        assert!(kafka_probe(port).is_err());
    }

    #[test]
    fn a_listening_port_names_its_owner() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let owner = port_owner(port).expect("this process holds the port");
        assert!(owner.starts_with(&format!("pid {} (", std::process::id())), "{owner}");
    }

    #[test]
    fn metadata_answers_are_read_within_bounds() {
        // throttle 0, one broker (1, "h", 9092, null rack), cluster "c", controller 1, no topics.
        let mut body = vec![
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, b'h', 0, 0, 0x23, 0x84, 0xff, 0xff,
        ];
        body.extend_from_slice(&[0, 1, b'c', 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(metadata_v4_summary(&body), Ok((1, 1)));
        for cut in 0..body.len() - 4 {
            assert!(metadata_v4_summary(&body[..cut]).is_err(), "cut at {cut}");
        }
        // A hostile broker count does not allocate or loop past the bytes.
        assert!(metadata_v4_summary(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn listening_inodes_match_the_port_in_listen_state() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: 0100007F:3C4B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n\
             1: 0100007F:3C4B 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n";
        assert_eq!(listening_inodes(table, 0x3C4B), vec!["4242".to_string()]);
        assert!(listening_inodes(table, 80).is_empty());
    }
}

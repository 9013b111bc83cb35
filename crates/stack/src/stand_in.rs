//! A minimal HTTP/1.1 server for tests that need a stand-in for a service
//! the stack does not run (an OAuth issuer, Snowflake's login endpoint),
//! so each test writes what the stand-in checks and answers, not how it
//! reads a request. One request per connection (`Connection: close`), on
//! a thread of its own; a request it cannot read is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

/// The largest body a stand-in reads.
const MAX_BODY: usize = 1 << 20;

/// One request: the method, the path, the headers (names lowercased) and
/// the body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value, by its name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Serves `answer` on a free loopback port until the process ends; returns
/// `http://127.0.0.1:<port>`. `answer` gives the status and a JSON body.
pub fn serve(mut answer: impl FnMut(&Request) -> (u16, String) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for a stand-in");
    let url = format!("http://{}", listener.local_addr().expect("the stand-in's address"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Some(request) = conn.try_clone().ok().and_then(|c| read(c).ok()) else {
                continue;
            };
            let (status, body) = answer(&request);
            let mut out = conn;
            let _ = write!(
                out,
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                if status < 400 { "OK" } else { "Refused" },
                body.len()
            );
        }
    });
    url
}

fn read(conn: std::net::TcpStream) -> std::io::Result<Request> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(Ok(0), |(_, v)| v.parse())
        .map_err(|_| bad("a Content-Length that is not a number"))?;
    if length > MAX_BODY {
        return Err(bad("a body over the stand-in's limit"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

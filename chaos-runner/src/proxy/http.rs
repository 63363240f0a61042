//! Where one HTTP/1.1 request ends and the next begins, so a link can act on whole
//! messages (drop, hold, copy) instead of on byte chunks.
//!
//! Only framing is parsed: the request line, `Content-Length` and chunked
//! `Transfer-Encoding`. Anything this framer does not understand (not HTTP, an upgrade,
//! `Expect: 100-continue`, a head over 64 KiB, a body over 64 MiB) hands the connection
//! back to plain byte copying, with nothing lost: the bytes buffered so far are returned.

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

/// Largest request head the framer waits for.
const MAX_HEAD: usize = 64 << 10;
/// Largest request it buffers whole (a snapshot chunk of raft-node is 1 MiB).
const MAX_FRAME: usize = 64 << 20;

/// One whole request as it crossed the link.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: Bytes,
    pub method: String,
    pub path: String,
    /// When its last byte reached the proxy.
    pub seen: Instant,
}

/// Splits a client's byte stream into requests.
#[derive(Default)]
pub struct RequestFramer {
    buf: BytesMut,
}

impl RequestFramer {
    /// Adds bytes read from the client; returns the requests they complete, in order.
    /// `Err` carries every byte buffered so far: the stream is not framed HTTP/1.1 and
    /// must be copied as bytes from here on.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Frame>, Bytes> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match next_request(&self.buf) {
                Parse::Complete { len, method, path } => {
                    // A copy of exactly the request's size: a frame kept for a replay
                    // must not pin the whole read buffer it came in.
                    let bytes = Bytes::copy_from_slice(&self.buf[..len]);
                    self.buf.advance(len);
                    out.push(Frame {
                        bytes,
                        method,
                        path,
                        seen: Instant::now(),
                    })
                }
                Parse::Partial => return Ok(out),
                Parse::NotFramed => {
                    // Whatever was framed already goes first, then the rest as bytes.
                    let mut rest = BytesMut::new();
                    for f in out {
                        rest.extend_from_slice(&f.bytes);
                    }
                    rest.extend_from_slice(&self.buf.split());
                    return Err(rest.freeze());
                }
            }
        }
    }
}

enum Parse {
    Complete {
        len: usize,
        method: String,
        path: String,
    },
    Partial,
    NotFramed,
}

/// A method token and a space: what every HTTP/1.1 request starts with. Up to 7 capital
/// letters (OPTIONS, CONNECT) with nothing after them cannot be told yet; anything longer
/// is not a method, so a protocol whose first message is one bare word is never held
/// back waiting for a space.
fn starts_like_a_request(buf: &[u8]) -> bool {
    let token = buf.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if token == buf.len() {
        return token <= 7;
    }
    token > 0 && token <= 7 && buf[token] == b' '
}

fn next_request(buf: &[u8]) -> Parse {
    if buf.is_empty() {
        return Parse::Partial;
    }
    if !starts_like_a_request(buf) {
        return Parse::NotFramed;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parse::Partial,
        _ => return Parse::NotFramed,
    };
    let Some(body) = body_framing(req.headers) else {
        return Parse::NotFramed;
    };
    let len = match body {
        Body::Length(n) => match head.checked_add(n) {
            Some(total) if total <= MAX_FRAME => total,
            _ => return Parse::NotFramed,
        },
        Body::Chunked => match chunked_len(&buf[head..]) {
            Chunked::Complete(n) => head + n,
            Chunked::Partial if buf.len() <= MAX_FRAME => return Parse::Partial,
            _ => return Parse::NotFramed,
        },
    };
    if buf.len() < len {
        return Parse::Partial;
    }
    Parse::Complete {
        len,
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
    }
}

enum Body {
    Length(usize),
    Chunked,
}

/// How the body is delimited; `None` for what the framer leaves alone.
fn body_framing(headers: &[httparse::Header]) -> Option<Body> {
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        let value = std::str::from_utf8(h.value).ok()?.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return None;
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("expect") || h.name.eq_ignore_ascii_case("upgrade") {
            return None;
        }
    }
    match (length, chunked) {
        (Some(_), true) => None,
        (_, true) => Some(Body::Chunked),
        (n, false) => Some(Body::Length(n.unwrap_or(0))),
    }
}

#[derive(Debug, PartialEq)]
enum Chunked {
    Complete(usize),
    Partial,
    Invalid,
}

/// The length of a whole chunked body (with its trailers) at the start of `b`.
fn chunked_len(b: &[u8]) -> Chunked {
    let mut at = 0usize;
    loop {
        let Some(eol) = find(&b[at..], b"\r\n") else {
            return Chunked::Partial;
        };
        let line = &b[at..at + eol];
        let size_text = line.split(|&c| c == b';').next().unwrap_or(b"");
        let Some(size) = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            return Chunked::Invalid;
        };
        at += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(&b[at..], b"\r\n") else {
                    return Chunked::Partial;
                };
                at += eol + 2;
                if eol == 0 {
                    return Chunked::Complete(at);
                }
            }
        }
        let Some(end) = at.checked_add(size).and_then(|e| e.checked_add(2)) else {
            return Chunked::Invalid;
        };
        if end > MAX_FRAME {
            return Chunked::Invalid;
        }
        if b.len() < end {
            return Chunked::Partial;
        }
        if &b[end - 2..end] != b"\r\n" {
            return Chunked::Invalid;
        }
        at = end;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `buf` holds a whole response (to a request that was not HEAD): a copy sent
/// on a connection of its own reads its answer to the end before closing, so the server
/// never sees a request cut short.
pub fn response_complete(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = resp.parse(buf) else {
        return false;
    };
    if resp.code.is_some_and(|c| c < 200 || c == 204 || c == 304) {
        return true;
    }
    match body_framing(resp.headers) {
        Some(Body::Length(n)) => buf.len() >= head.saturating_add(n),
        Some(Body::Chunked) => matches!(chunked_len(&buf[head..]), Chunked::Complete(_)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Vec<u8> {
        format!(
            "POST /raft HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn requests_are_split_wherever_the_reads_fall() {
        let mut stream = req("hello");
        stream.extend(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
        stream.extend(req(""));
        stream.extend(
            b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: y\r\n\r\n",
        );
        for step in [1, 2, 7, stream.len()] {
            let mut f = RequestFramer::default();
            let mut frames = Vec::new();
            for piece in stream.chunks(step) {
                frames.extend(f.push(piece).unwrap());
            }
            let paths: Vec<&str> = frames.iter().map(|f| f.path.as_str()).collect();
            assert_eq!(paths, ["/raft", "/a", "/raft", "/c"], "reads of {step}");
            let joined: Vec<u8> = frames.iter().flat_map(|f| f.bytes.to_vec()).collect();
            assert_eq!(joined, stream, "nothing lost or added");
        }
    }

    #[test]
    fn what_is_not_framed_http_comes_back_whole() {
        let mut f = RequestFramer::default();
        assert_eq!(
            &f.push(b"\x00\x01binary").unwrap_err()[..],
            b"\x00\x01binary"
        );
        let mut f = RequestFramer::default();
        let mut s = req("ok");
        s.extend(b"POST /x HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n");
        let rest = f.push(&s).unwrap_err();
        assert_eq!(
            &rest[..],
            &s[..],
            "the framed request goes out first, then the rest"
        );
        let mut f = RequestFramer::default();
        let huge = format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n", MAX_FRAME);
        assert!(f.push(huge.as_bytes()).is_err());
        let mut f = RequestFramer::default();
        let bad = b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert!(
            f.push(bad).is_err(),
            "conflicting lengths are not guessed at"
        );
        let mut f = RequestFramer::default();
        assert!(f.push(b"POS").unwrap().is_empty(), "too short to tell");
        let mut f = RequestFramer::default();
        assert!(f.push(b"HANDSHAKE").is_err(), "no method is that long");
    }

    #[test]
    fn responses_are_complete_when_their_body_is() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        assert!(response_complete(r));
        assert!(!response_complete(&r[..r.len() - 1]));
        assert!(response_complete(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        ));
        assert_eq!(chunked_len(b"zz\r\n"), Chunked::Invalid);
    }
}

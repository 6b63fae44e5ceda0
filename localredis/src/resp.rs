//! A minimal blocking RESP2 client, just enough to probe and drive test servers.
//!
//! It exists so that readiness checks and test set-up (`SAVE`, `INFO`,
//! `CLUSTER INFO`, `SENTINEL get-master-addr-by-name`) need no Redis client
//! crate: this crate is used to test code built on the `redis` crate and must
//! not depend on it. It sends commands as arrays of bulk strings and parses the
//! five RESP2 reply types; it never sends `HELLO 3`, so RESP3 never arrives.
//!
//! Every read and write has a timeout, because the servers it talks to are
//! paused and killed on purpose. A timeout is reported as [`Error::Timeout`],
//! distinct from a refused connection ([`Error::Io`]), so a fault-injection
//! client can record it as indeterminate.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Error;

/// Largest bulk string or array we accept; guards against garbage lengths.
const MAX_LEN: usize = 512 * 1024 * 1024;

/// One RESP2 reply. Error replies nested in arrays (e.g. inside `EXEC`) stay
/// [`Reply::Error`]; a top-level error reply becomes [`Error::Redis`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `-ERR …`, inside an array only.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$n` with its bytes.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n`.
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a status or (UTF-8) bulk reply.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Status(s) => Some(s),
            Reply::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A plain-TCP connection to one server, with read/write timeouts.
#[derive(Debug)]
pub struct Connection {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
    timeout: Duration,
}

impl Connection {
    /// Connect to `addr`; `timeout` bounds the connect and every later read and write.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::Io`] (e.g. connection refused).
    pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let what = || format!("connecting to {addr}");
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| classify(e, what(), timeout))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| Error::io(what(), e))?;
        Ok(Connection {
            stream: BufReader::new(stream),
            addr,
            timeout,
        })
    }

    /// Send one command and read its reply.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] for an error reply, [`Error::Timeout`] when the server
    /// does not answer in time, [`Error::Io`] / [`Error::Protocol`] otherwise.
    /// Errors name the command by its first word only, so `AUTH` passwords
    /// never appear in them.
    pub fn command<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Reply, Error> {
        let name = args
            .first()
            .map(|a| String::from_utf8_lossy(a.as_ref()).to_uppercase())
            .unwrap_or_default();
        let what = format!("{name} to {}", self.addr);
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        let timeout = self.timeout;
        self.stream
            .get_mut()
            .write_all(&frame)
            .map_err(|e| classify(e, what.clone(), timeout))?;
        match self.read_reply(&what)? {
            Reply::Error(message) => Err(Error::Redis { what, message }),
            reply => Ok(reply),
        }
    }

    fn read_reply(&mut self, what: &str) -> Result<Reply, Error> {
        let line = self.read_line(what)?;
        let protocol = |detail: String| Error::Protocol {
            what: what.to_string(),
            detail,
        };
        let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
        let length = |rest: &str| -> Result<Option<usize>, Error> {
            let n: i64 = rest
                .parse()
                .map_err(|_| protocol(format!("bad length {rest:?}")))?;
            match usize::try_from(n) {
                Ok(n) if n <= MAX_LEN => Ok(Some(n)),
                Ok(n) => Err(protocol(format!("length {n} too large"))),
                Err(_) => Ok(None),
            }
        };
        match kind {
            "+" => Ok(Reply::Status(rest.to_string())),
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => rest
                .parse()
                .map(Reply::Integer)
                .map_err(|_| protocol(format!("bad integer {rest:?}"))),
            "$" => match length(rest)? {
                None => Ok(Reply::Nil),
                Some(n) => {
                    let mut data = vec![0; n + 2];
                    io::Read::read_exact(&mut self.stream, &mut data)
                        .map_err(|e| classify(e, what.to_string(), self.timeout))?;
                    data.truncate(n);
                    Ok(Reply::Bulk(data))
                }
            },
            "*" => match length(rest)? {
                None => Ok(Reply::Nil),
                Some(n) => (0..n)
                    .map(|_| self.read_reply(what))
                    .collect::<Result<_, _>>()
                    .map(Reply::Array),
            },
            _ => Err(protocol(format!("unexpected line {line:?}"))),
        }
    }

    fn read_line(&mut self, what: &str) -> Result<String, Error> {
        let mut line = String::new();
        let n = self
            .stream
            .read_line(&mut line)
            .map_err(|e| classify(e, what.to_string(), self.timeout))?;
        if n == 0 {
            return Err(Error::io(
                what,
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by server"),
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// A socket timeout is [`Error::Timeout`]; anything else is [`Error::Io`].
fn classify(err: io::Error, what: String, after: Duration) -> Error {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout { what, after },
        _ => Error::Io { what, source: err },
    }
}

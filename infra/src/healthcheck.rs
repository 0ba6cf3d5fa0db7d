//! `kiln-api healthcheck` / `kiln-worker healthcheck`: asks the process's
//! own `/readyz` and exits 0 when it answers 200. Container images have no
//! curl or wget, and a shell's `/dev/tcp` is bash-only (Docker runs
//! `CMD-SHELL` under `/bin/sh`), so the binaries probe themselves.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The address to probe for a listen address: a wildcard bind is asked on
/// loopback of the same family.
pub fn probe_address(listen: &str) -> Option<SocketAddr> {
    let mut addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(addr)
}

/// The status code `GET path` answers at `addr` (HTTP/1.0, bounded in time).
pub fn status_of(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    parse_status(&head[..read]).ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head.get(..12)?).ok()?;
    let code = line.strip_prefix("HTTP/1.")?.get(2..5)?;
    code.parse().ok()
}

/// Runs the probe against the listen address in `var` (or `default`):
/// 0 when `/readyz` answers 200, 1 otherwise (what it saw on stderr).
pub fn run(var: &str, default: &str) -> ExitCode {
    let listen = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let Some(addr) = probe_address(&listen) else {
        eprintln!("healthcheck: {var}={listen:?} is not an address:port");
        return ExitCode::from(2);
    };
    match status_of(addr, "/readyz") {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("healthcheck: http://{addr}/readyz answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("healthcheck: http://{addr}/readyz: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            probe_address("[::]:9091"),
            Some("[::1]:9091".parse().unwrap())
        );
        assert_eq!(
            probe_address("10.1.2.3:80"),
            Some("10.1.2.3:80".parse().unwrap())
        );
        assert_eq!(probe_address("nonsense"), None);
    }

    #[test]
    fn status_lines_are_read() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH_9"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2"), None);
    }
}

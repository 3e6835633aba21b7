//! Who is calling: the peer of a workload connection and the check of its process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use iothub_types::ModuleId;
use tokio::net::{TcpListener, UnixListener};

/// Decides whether a calling process may act as a module. Implemented for closures
/// `Fn(&ModuleId, u32) -> bool`.
pub trait CallerCheck: Send + Sync + 'static {
    /// Whether the check looks at the pid at all; when false, no pid is looked up.
    fn needs_pid(&self) -> bool {
        true
    }

    /// Whether process `pid` belongs to module `module_id`.
    fn allows(&self, module_id: &ModuleId, pid: u32) -> bool;
}

/// No process check: the listener a call came in on alone names the module.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyCaller;

impl CallerCheck for AnyCaller {
    fn needs_pid(&self) -> bool {
        false
    }

    fn allows(&self, _module_id: &ModuleId, _pid: u32) -> bool {
        true
    }
}

impl<F> CallerCheck for F
where
    F: Fn(&ModuleId, u32) -> bool + Send + Sync + 'static,
{
    fn allows(&self, module_id: &ModuleId, pid: u32) -> bool {
        self(module_id, pid)
    }
}

/// The other end of a workload connection, recorded when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerAddress {
    /// A Unix socket peer; the pid from its credentials.
    Unix { pid: Option<u32> },
    /// A TCP peer; its pid is looked up only when needed.
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl Connected<IncomingStream<'_, UnixListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> PeerAddress {
        let pid = stream
            .io()
            .peer_cred()
            .ok()
            .and_then(|credentials| credentials.pid())
            .and_then(|pid| u32::try_from(pid).ok());
        PeerAddress::Unix { pid }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> PeerAddress {
        let remote = *stream.remote_addr();
        let local = stream.io().local_addr().unwrap_or(remote);
        PeerAddress::Tcp { local, remote }
    }
}

/// The pid of the local process whose TCP socket `client` is connected to `server` (a
/// loopback connection seen from the server side), found through `/proc/net/tcp{,6}` and
/// `/proc/<pid>/fd`. `None` when it cannot be found (the connection is gone, or the
/// process's descriptors are not readable by this user). Blocking: it reads `/proc`.
pub fn loopback_peer_pid(server: SocketAddr, client: SocketAddr) -> Option<u32> {
    let table = match client {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    let inode = parse_tcp_table(&text)
        .into_iter()
        .find(|entry| entry.local == client && entry.remote == server && entry.inode != 0)?
        .inode;
    let wanted = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for descriptor in descriptors.flatten() {
            if std::fs::read_link(descriptor.path())
                .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpTableEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub inode: u64,
}

/// Parses `/proc/net/tcp{,6}`, pure; unreadable rows are skipped.
pub(crate) fn parse_tcp_table(text: &str) -> Vec<TcpTableEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            Some(TcpTableEntry {
                local: parse_hex_socket_address(fields.get(1)?)?,
                remote: parse_hex_socket_address(fields.get(2)?)?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each 32-bit
/// word of the address in host byte order.
fn parse_hex_socket_address(text: &str) -> Option<SocketAddr> {
    let (address_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word_index in 0..address_hex.len() / 8 {
        let word =
            u32::from_str_radix(address_hex.get(word_index * 8..word_index * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let address = match (address_hex.len(), bytes.len()) {
        (8, 4) => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        (32, 16) => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(address, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_word(octets: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(octets))
    }

    #[test]
    fn tcp_tables() {
        let v4 = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: {}:1F90 {}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: garbage\n",
            hex_word([127, 0, 0, 1]),
            hex_word([0, 0, 0, 0]),
        );
        assert_eq!(
            parse_tcp_table(&v4),
            vec![TcpTableEntry {
                local: "127.0.0.1:8080".parse().unwrap(),
                remote: "0.0.0.0:0".parse().unwrap(),
                inode: 12345,
            }]
        );
        let loopback_v6 = [[0; 4], [0; 4], [0; 4], [0, 0, 0, 1]]
            .map(hex_word)
            .concat();
        let v6 = format!(
            "header\n   0: {loopback_v6}:0050 {loopback_v6}:C350 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n"
        );
        assert_eq!(
            parse_tcp_table(&v6),
            vec![TcpTableEntry {
                local: "[::1]:80".parse().unwrap(),
                remote: "[::1]:50000".parse().unwrap(),
                inode: 777,
            }]
        );
    }
}

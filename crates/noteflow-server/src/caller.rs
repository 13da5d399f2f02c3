//! Who is calling: the identity per-caller limits (upload slots) are counted against. Today it is
//! the peer's IP address (every connection from one host is one caller); when tenants arrive, the
//! layer that authenticates them puts the tenant here instead and the limits follow unchanged.
//!
//! The per-RPC layer (the `observe` module) puts a [`Caller`] in every request's extensions, so
//! handlers read it with [`Caller::of`] and never look at transport details themselves.

use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller(String);

impl Caller {
    /// A caller known only by the address it connects from.
    pub fn from_peer_ip(ip: IpAddr) -> Self {
        // An IPv4 client reaching a dual-stack listener shows up as ::ffff:a.b.c.d; it is the same
        // host as a.b.c.d and must share its limit.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        Self(format!("ip:{ip}"))
    }

    /// Requests without a known peer (in-process transports) share this one identity, so they are
    /// limited together rather than not at all.
    pub fn unknown() -> Self {
        Self("unknown".into())
    }

    /// The caller the per-RPC layer recorded for this request.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Self::unknown)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_client_is_one_caller_whichever_socket_family_it_arrives_on() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(Caller::from_peer_ip(v4), Caller::from_peer_ip(mapped));
        assert_ne!(
            Caller::from_peer_ip(v4),
            Caller::from_peer_ip("10.1.2.4".parse().unwrap())
        );
    }
}

//! The guard on calls Tessera makes to addresses its users choose (flows' HTTP
//! widgets, actions' `fetch`): no private, loopback or link-local destination unless
//! the operator allow-lists the host, checked before the call and again by the client's
//! own resolver, so a name cannot resolve differently for the connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Who may be called: the allow-list and the setting it comes from (named in errors).
#[derive(Clone, Debug)]
pub struct Outbound {
    /// Hosts or IPs that may be called even though they are private or loopback.
    allow: Vec<String>,
    setting: &'static str,
}

impl Outbound {
    pub fn new(allow: Vec<String>, setting: &'static str) -> Outbound {
        Outbound { allow, setting }
    }

    /// A client that follows no redirects (a redirect would skip the check) and whose
    /// resolver answers only addresses this guard permits.
    pub fn client(&self) -> Result<reqwest::Client, String> {
        crate::install_tls();
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnly { allow: self.allow.clone(), setting: self.setting }))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Refuses URLs whose host resolves to a private, loopback or link-local address,
    /// unless the host is on the allow-list: a flow or a script must not become a way into the
    /// network Tessera runs in.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("only http and https URLs may be called, not {}", parsed.scheme()));
        }
        let host = parsed.host_str().ok_or("the URL has no host")?.trim_matches(['[', ']']).to_owned();
        if self.allow.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
            return Ok(());
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs =
            tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
        for a in addrs {
            if is_private(a.ip()) {
                return Err(format!(
                    "{host} resolves to {}, a private address; add it to {} to permit it",
                    a.ip(),
                    self.setting
                ));
            }
        }
        Ok(())
    }
}

/// The HTTP client's own resolver: it answers only public addresses (any, for an
/// allow-listed host). The check before a call gives a clear error; this is what makes
/// it hold, since the address connected to is the one checked — a name that resolved to
/// a public address for the check cannot resolve to a private one for the connection
/// (DNS rebinding).
struct PublicOnly {
    allow: Vec<String>,
    setting: &'static str,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allow.iter().any(|a| a.eq_ignore_ascii_case(&host));
        let setting = self.setting;
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<std::net::SocketAddr> =
                found.into_iter().filter(|a| allowed || !is_private(a.ip())).collect();
            if usable.is_empty() {
                let e = format!("{host} resolves only to private addresses; add it to {setting} to permit it");
                return Err(e.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // carrier-grade NAT
                || v4.octets()[0] == 0 // "this network"
                || v4.octets()[0] >= 240 // reserved
                || v4.octets()[0] == 198 && (18..20).contains(&v4.octets()[1]) // benchmarking
                || v4.octets()[..3] == [192, 0, 0] // IETF protocol assignments
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || embedded_ipv4(v6).is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// The IPv4 address an IPv6 one stands for, in the forms that reach it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but still routed by some
/// stacks), NAT64 (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`, RFC 6052 and 8215)
/// and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let (s, o) = (v6.segments(), v6.octets());
    let last = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] {
        return Some(last);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return Some(last);
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client(allow: &[&str]) -> reqwest::Client {
        crate::install_tls();
        let allow = allow.iter().map(|a| (*a).to_owned()).collect();
        reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow, setting: "an_allowlist" }))
            .build()
            .unwrap()
    }

    /// The client itself, without the check before a call, refuses a name that resolves
    /// to a private address: what a rebinding name would resolve to the second time.
    #[tokio::test]
    async fn the_client_connects_to_private_addresses_only_when_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        });
        let url = format!("http://localhost:{port}/");
        let refused = client(&[]).get(&url).send().await.unwrap_err();
        let said = crate::http::describe(&refused);
        assert!(said.contains("localhost resolves only to private addresses"), "{said}");
        assert!(!said.contains(&url), "no URL in what is logged and stored: {said}");
        let allowed = client(&["LOCALHOST"]).get(&url).send().await.unwrap();
        assert_eq!(allowed.text().await.unwrap(), "ok");
    }

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::c0a8:101",
            "::10.0.0.1",
            "::127.0.0.1",
            "::169.254.169.254",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808", "::8.8.8.8", "2002:808:808::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}

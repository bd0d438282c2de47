//! Where a subscription may send: `http(s)` URLs whose host is not on a loopback, private or
//! link-local network, unless the operator allows those (so a subscription cannot be used to
//! probe the service's own network). Names are checked when resolved, at every attempt.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    Url,
};

pub const MAX_URL_CHARS: usize = 2048;

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast or documentation space.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // IPv4 carried in IPv6 (mapped, compatible, NAT64, 6to4) is judged as IPv4.
            let embedded = match segments {
                [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] => v6.to_ipv4(),
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
                    Some(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
                }
                [0x2002, hi, lo, ..] => Some(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
                _ => None,
            };
            if let Some(v4) = embedded.filter(|_| !v6.is_loopback() && !v6.is_unspecified()) {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A receiver URL as a subscription may hold it.
pub fn parse_url(url: &str, allow_private: bool) -> Result<Url, String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("url is longer than {MAX_URL_CHARS} characters"));
    }
    let parsed = Url::parse(url).map_err(|e| format!("url is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must be http or https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not carry credentials; the signature authenticates the service".into());
    }
    let Some(host) = parsed.host_str() else { return Err("url has no host".into()) };
    if !allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
        if literal.is_ok_and(is_private) || host.eq_ignore_ascii_case("localhost") {
            return Err(format!(
                "url points at a private or loopback address ({host}); receivers there are not allowed here"
            ));
        }
    }
    Ok(parsed)
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| !is_private(addr.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} resolves to no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client deliveries go through: no redirects (each hop would need the same check),
/// and, unless private receivers are allowed, names resolved to public addresses only.
pub fn client(timeout: std::time::Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chatrooms-webhooks/", env!("CARGO_PKG_VERSION")));
    if allow_private {
        builder.build()
    } else {
        // A proxy from the environment would connect for us, past the check.
        builder.no_proxy().dns_resolver(Arc::new(PublicOnly)).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_networks_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:c0a8:1::]/",
            "http://localhost:8080/",
            "http://0.0.0.0/",
        ] {
            assert!(parse_url(bad, false).is_err(), "{bad}");
            assert!(parse_url(bad, true).is_ok(), "{bad} with private receivers allowed");
        }
        for good in ["https://hooks.example.com/chat", "http://93.184.216.34:8080/x"] {
            assert!(parse_url(good, false).is_ok(), "{good}");
        }
        for bad in ["ftp://example.com/", "not a url", "https://user:pw@example.com/", "mailto:a@b.c"] {
            assert!(parse_url(bad, true).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://example.com/{}", "a".repeat(2048)), true).is_err());
    }
}

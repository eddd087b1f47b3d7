//! What `serve` tells the rest of the station about itself: the URLs and IP
//! addresses it listens on, in `<data-dir>/endpoint.json`. The connection
//! form's informational "AS2 IP addresses" (`station.ip_addresses`), which
//! partners put into their firewalls, is filled from it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The endpoint as last started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// The URLs it answers on.
    pub urls: Vec<String>,
    /// The IP addresses partners connect to.
    pub ip_addresses: Vec<String>,
}

const FILE_NAME: &str = "endpoint.json";

/// The address partners reach for a listener bound to `local`: the bound
/// address itself, or for a wildcard bind (0.0.0.0, ::) the address this
/// machine uses for outside traffic. (Connecting a UDP socket sends nothing;
/// it only asks the routing table.) `None` when there is no such route.
pub fn reachable_address(local: SocketAddr) -> Option<IpAddr> {
    if !local.ip().is_unspecified() {
        return Some(local.ip());
    }
    let (bind, probe): (&str, &str) = if local.is_ipv4() {
        ("0.0.0.0:0", "192.0.2.1:9")
    } else {
        ("[::]:0", "[2001:db8::1]:9")
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    socket.local_addr().ok().map(|addr| addr.ip())
}

impl EndpointInfo {
    /// The information for listeners at `addresses` (scheme, bound address).
    pub fn for_listeners(listeners: &[(&str, SocketAddr)]) -> Self {
        let mut info = EndpointInfo::default();
        for (scheme, local) in listeners {
            info.urls.push(format!("{scheme}://{local}/"));
            if let Some(ip) = reachable_address(*local) {
                let ip = ip.to_string();
                if !info.ip_addresses.contains(&ip) {
                    info.ip_addresses.push(ip);
                }
            }
        }
        info
    }

    /// Writes it to the data folder, durably.
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::files::write_durably(&data_dir.join(FILE_NAME), format!("{text}\n").as_bytes())
    }

    /// What `serve` last wrote in the data folder, if it ever ran there.
    pub fn load(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join(FILE_NAME)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// `config` (a connection's JSON) with `station.ip_addresses` set to these addresses.
    pub fn fill_config(&self, config: &mut serde_json::Value) {
        if let Some(station) = config.get_mut("station").and_then(|s| s.as_object_mut()) {
            station.insert("ip_addresses".into(), serde_json::json!(self.ip_addresses));
        }
    }

    /// The connection schema (JSON text) with these addresses as the
    /// informational field's default, which forms show.
    pub fn fill_schema(&self, schema: &str) -> String {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(schema) else {
            return schema.to_string();
        };
        // The station's fields are under `$defs` (schemars), or inline.
        let at = [
            "/$defs/Station/properties/ip_addresses",
            "/properties/station/properties/ip_addresses",
        ]
        .into_iter()
        .find(|pointer| value.pointer(pointer).is_some());
        if let Some(field) = at
            .and_then(|pointer| value.pointer_mut(pointer))
            .and_then(|f| f.as_object_mut())
        {
            field.insert("default".into(), serde_json::json!(self.ip_addresses));
        }
        serde_json::to_string_pretty(&value).unwrap_or_else(|_| schema.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_bind_is_reported_as_is_and_a_wildcard_as_a_real_address() {
        let info = EndpointInfo::for_listeners(&[
            ("http", "127.0.0.1:4080".parse().unwrap()),
            ("https", "127.0.0.1:4443".parse().unwrap()),
        ]);
        assert_eq!(info.ip_addresses, ["127.0.0.1"]);
        assert_eq!(
            info.urls,
            ["http://127.0.0.1:4080/", "https://127.0.0.1:4443/"]
        );
        if let Some(ip) = reachable_address("0.0.0.0:4080".parse().unwrap()) {
            assert!(!ip.is_unspecified(), "{ip}");
        }
        let mut config = serde_json::json!({ "station": { "as2_id": "ACME" } });
        info.fill_config(&mut config);
        assert_eq!(
            config["station"]["ip_addresses"],
            serde_json::json!(["127.0.0.1"])
        );
        let schema = info.fill_schema(
            r#"{"$defs":{"Station":{"properties":{"ip_addresses":{"type":"array","readOnly":true}}}}}"#,
        );
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(
            schema["$defs"]["Station"]["properties"]["ip_addresses"]["default"],
            serde_json::json!(["127.0.0.1"])
        );
    }
}

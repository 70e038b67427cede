//! Inbound firewall rules (`/api/v1/firewall-rules`), opened for requested ports.
//!
//! Lambda instances accept only what the account's inbound rules allow. The legacy
//! account-wide rule list is replaced as a whole by `PUT`, so [`FirewallApi::open_ports`]
//! reads the current rules, adds only the missing ones and writes the union back: it
//! never removes a rule. Rules apply to every instance of the account (not only the new
//! one) and do not apply in `us-south-1`. Two clients changing rules at the same moment
//! can race (last write wins); cloud-atlas only ever adds.
//! API: <https://docs.lambda.ai/api/cloud#firewallRulesList>.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::translate::decode;
use crate::error::Result;
use crate::http::ApiClient;
use crate::spec::{PortSpec, Protocol};

/// Source network of rules cloud-atlas adds unless configured otherwise.
pub const ANYWHERE: &str = "0.0.0.0/0";

/// One inbound firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FirewallRule {
    /// `tcp`, `udp`, `icmp` or `all`.
    pub protocol: String,
    /// Inclusive `[min, max]` port range (absent for `icmp`/`all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<[u16; 2]>,
    /// Allowed sources in CIDR notation.
    pub source_network: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

impl FirewallRule {
    /// A rule allowing `port` over `protocol` (`http` counts as `tcp`) from `source`.
    pub fn for_port(p: &PortSpec, source: &str) -> FirewallRule {
        FirewallRule {
            protocol: proto(p.protocol).to_string(),
            port_range: Some([p.port, p.port]),
            source_network: source.to_string(),
            description: format!("cloud-atlas: {p}"),
        }
    }

    /// Whether this rule already lets `p` in from `source`.
    pub fn allows(&self, p: &PortSpec, source: &str) -> bool {
        let proto_ok = self.protocol == "all" || self.protocol == proto(p.protocol);
        let port_ok = match self.port_range {
            Some([lo, hi]) => lo <= p.port && p.port <= hi,
            None => self.protocol == "all",
        };
        let src_ok = self.source_network == source || self.source_network == ANYWHERE;
        proto_ok && port_ok && src_ok
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        _ => "tcp",
    }
}

/// The rules to add so every port in `ports` is reachable from `source`.
pub fn missing_rules(
    existing: &[FirewallRule],
    ports: &[PortSpec],
    source: &str,
) -> Vec<FirewallRule> {
    let mut out: Vec<FirewallRule> = Vec::new();
    for p in ports {
        if !existing
            .iter()
            .chain(out.iter())
            .any(|r| r.allows(p, source))
        {
            out.push(FirewallRule::for_port(p, source));
        }
    }
    out
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// The firewall endpoints.
#[derive(Debug, Clone)]
pub struct FirewallApi {
    api: ApiClient,
}

impl FirewallApi {
    pub(crate) fn new(api: ApiClient) -> FirewallApi {
        FirewallApi { api }
    }

    /// `GET /api/v1/firewall-rules`.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn list(&self) -> Result<Vec<FirewallRule>> {
        let v: Value = self
            .api
            .get("/api/v1/firewall-rules")
            .operation("firewall.list")
            .json()
            .await?;
        Ok(decode::<Data<Vec<FirewallRule>>>(&v, "firewall rules")?.data)
    }

    /// `PUT /api/v1/firewall-rules`: replace every inbound rule with `rules`.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn replace(&self, rules: &[FirewallRule]) -> Result<Vec<FirewallRule>> {
        let v: Value = self
            .api
            .put("/api/v1/firewall-rules")
            .body(json!({ "data": rules }))
            .operation("firewall.replace")
            .json()
            .await?;
        Ok(decode::<Data<Vec<FirewallRule>>>(&v, "firewall rules")?.data)
    }

    /// Make sure `ports` are open from `source`: read the rules, add the missing ones.
    /// Returns the rules that were added (none when everything was open already).
    ///
    /// # Errors
    /// Whatever listing or replacing fails with.
    pub async fn open_ports(&self, ports: &[PortSpec], source: &str) -> Result<Vec<FirewallRule>> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let existing = self.list().await?;
        let add = missing_rules(&existing, ports, source);
        if add.is_empty() {
            return Ok(add);
        }
        let mut all = existing;
        all.extend(add.iter().cloned());
        self.replace(&all).await?;
        Ok(add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn adds_only_what_is_missing() {
        let ssh = FirewallRule {
            protocol: "tcp".into(),
            port_range: Some([22, 22]),
            source_network: ANYWHERE.into(),
            description: "Allow SSH from anywhere".into(),
        };
        let add = missing_rules(
            &[ssh],
            &[p("22/tcp"), p("8000/http"), p("9000/udp"), p("8000/tcp")],
            ANYWHERE,
        );
        assert_eq!(add.len(), 2, "{add:?}");
        assert_eq!(add[0].protocol, "tcp");
        assert_eq!(add[0].port_range, Some([8000, 8000]));
        assert_eq!(add[1].protocol, "udp");
        let all = FirewallRule {
            protocol: "all".into(),
            port_range: None,
            source_network: ANYWHERE.into(),
            description: String::new(),
        };
        assert!(missing_rules(&[all], &[p("1234/udp")], "10.0.0.0/8").is_empty());
    }

    #[test]
    fn rule_json_matches_the_spec_shape() {
        let r = FirewallRule::for_port(&p("8000/http"), ANYWHERE);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"protocol": "tcp", "port_range": [8000, 8000], "source_network": "0.0.0.0/0", "description": "cloud-atlas: 8000/http"})
        );
    }
}

//! The keys of `[providers.lambda]`, the environment and [`LambdaBuilder::with_config`](super::LambdaBuilder::with_config).

crate::config_keys! {
    /// A Lambda configuration key: `atlas.toml` name (and aliases), env vars, and what
    /// [`LambdaBuilder::with_config`](super::LambdaBuilder::with_config) takes.
    pub enum LambdaConfigKey for "lambda" {
        /// The API key (`LAMBDA_API_KEY`, alias `LAMBDA_LABS_API_KEY`).
        ApiKey = "api_key" ["key"]: Secret env ["LAMBDA_API_KEY", "LAMBDA_LABS_API_KEY"],
        /// Base URL (`ATLAS_LAMBDA_BASE_URL`; default [`super::DEFAULT_BASE_URL`]).
        BaseUrl = "base_url" ["url"]: Url env ["ATLAS_LAMBDA_BASE_URL"],
        /// SSH key names used when a request names none.
        SshKeyNames = "ssh_key_names" ["ssh_key", "ssh_keys"]: List,
        /// Whether spawns open requested ports in the firewall (default true).
        OpenPorts = "open_ports": Bool,
        /// Source network (CIDR) of firewall rules spawns add (default `0.0.0.0/0`).
        FirewallSource = "firewall_source": Text,
        /// How long a fetched catalog is reused (`"15s"`).
        CatalogTtl = "catalog_ttl": Duration,
    }
}

#[cfg(test)]
mod tests {
    use super::LambdaConfigKey as K;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("key", K::ApiKey),
            ("url", K::BaseUrl),
            ("ssh_key", K::SshKeyNames),
            ("ssh_keys", K::SshKeyNames),
            ("ssh_key_names", K::SshKeyNames),
            ("open_ports", K::OpenPorts),
            ("firewall_source", K::FirewallSource),
            ("catalog_ttl", K::CatalogTtl),
        ] {
            assert_eq!(s.parse::<K>().unwrap(), k, "{s}");
        }
        assert!("openports".parse::<K>().is_err());
    }
}

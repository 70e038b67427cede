//! The keys of `[providers.runpod]`, the environment and [`RunPodBuilder::with_config`](super::RunPodBuilder::with_config).

crate::config_keys! {
    /// A RunPod configuration key: `atlas.toml` name (and aliases), env vars, and what
    /// [`RunPodBuilder::with_config`](super::RunPodBuilder::with_config) takes.
    pub enum RunPodConfigKey for "runpod" {
        /// The API key (`RUNPOD_API_KEY`).
        ApiKey = "api_key" ["key"]: Secret env ["RUNPOD_API_KEY"],
        /// REST v2 base URL (`ATLAS_RUNPOD_BASE_URL`; default [`super::DEFAULT_BASE_URL`]).
        BaseUrl = "base_url" ["url"]: Url env ["ATLAS_RUNPOD_BASE_URL"],
        /// Serverless runtime base URL (`ATLAS_RUNPOD_SERVERLESS_BASE_URL`).
        ServerlessBaseUrl = "serverless_base_url" ["serverless_url"]: Url
            env ["ATLAS_RUNPOD_SERVERLESS_BASE_URL"],
        /// How long a GPU catalog read is reused (`"60s"`).
        CatalogTtl = "catalog_ttl": Duration,
        /// Longest wait the rate-limit gate imposes on one request (`"60s"`).
        RateLimitMaxWait = "rate_limit_max_wait": Duration,
    }
}

#[cfg(test)]
mod tests {
    use super::RunPodConfigKey as K;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("api_key", K::ApiKey),
            ("key", K::ApiKey),
            ("base_url", K::BaseUrl),
            ("url", K::BaseUrl),
            ("serverless_url", K::ServerlessBaseUrl),
            ("catalog_ttl", K::CatalogTtl),
            ("rate_limit_max_wait", K::RateLimitMaxWait),
        ] {
            assert_eq!(s.parse::<K>().unwrap(), k, "{s}");
        }
        let e = "baseurl".parse::<K>().unwrap_err();
        assert!(e.message().contains("providers.runpod.baseurl"), "{e}");
        assert!(e.message().contains("base_url (or url)"), "{e}");
    }
}

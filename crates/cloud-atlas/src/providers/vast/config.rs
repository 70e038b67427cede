//! The keys of `[providers.vast]`, the environment and [`VastBuilder::with_config`](super::VastBuilder::with_config).

crate::config_keys! {
    /// A Vast.ai configuration key: `atlas.toml` name (and aliases), env vars, and what
    /// [`VastBuilder::with_config`](super::VastBuilder::with_config) takes.
    pub enum VastConfigKey for "vast" {
        /// The API key (`VAST_API_KEY`).
        ApiKey = "api_key" ["key"]: Secret env ["VAST_API_KEY"],
        /// Base URL (`ATLAS_VAST_BASE_URL`; default [`super::DEFAULT_BASE_URL`]).
        BaseUrl = "base_url" ["url"]: Url env ["ATLAS_VAST_BASE_URL"],
        /// Client-side pacing: requests per second.
        RequestsPerSecond = "requests_per_second" ["rps"]: Number,
        /// Client-side pacing: requests allowed at once (with `requests_per_second`).
        Burst = "burst": Number,
    }
}

#[cfg(test)]
mod tests {
    use super::VastConfigKey as K;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("api_key", K::ApiKey),
            ("key", K::ApiKey),
            ("url", K::BaseUrl),
            ("rps", K::RequestsPerSecond),
            ("requests_per_second", K::RequestsPerSecond),
            ("burst", K::Burst),
        ] {
            assert_eq!(s.parse::<K>().unwrap(), k, "{s}");
        }
        assert!("bursts".parse::<K>().is_err());
    }
}

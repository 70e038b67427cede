//! The keys of `[providers.fly]`, the environment and [`FlyMachinesBuilder::with_config`](super::FlyMachinesBuilder::with_config).

crate::config_keys! {
    /// A Fly Machines configuration key: `atlas.toml` name (and aliases), env vars, and
    /// what [`FlyMachinesBuilder::with_config`](super::FlyMachinesBuilder::with_config) takes.
    pub enum FlyConfigKey for "fly" {
        /// The API token (`FLY_API_TOKEN`).
        ApiKey = "api_key" ["key", "api_token", "token"]: Secret env ["FLY_API_TOKEN"],
        /// Base URL (`ATLAS_FLY_BASE_URL`; default [`super::DEFAULT_BASE_URL`]).
        BaseUrl = "base_url" ["url"]: Url env ["ATLAS_FLY_BASE_URL"],
        /// The default app (`FLY_APP_NAME`).
        App = "app" ["app_name"]: Text env ["FLY_APP_NAME"],
        /// The organisation whose apps `list` covers when no app is set (`FLY_ORG`;
        /// default [`super::DEFAULT_ORG`]).
        Org = "org" ["org_slug", "organization"]: Text env ["FLY_ORG"],
    }
}

#[cfg(test)]
mod tests {
    use super::FlyConfigKey as K;

    #[test]
    fn keys_parse_with_aliases() {
        for (s, k) in [
            ("api_key", K::ApiKey),
            ("token", K::ApiKey),
            ("api_token", K::ApiKey),
            ("url", K::BaseUrl),
            ("app", K::App),
            ("app_name", K::App),
            ("org_slug", K::Org),
        ] {
            assert_eq!(s.parse::<K>().unwrap(), k, "{s}");
        }
        let e = "apps".parse::<K>().unwrap_err();
        assert!(
            e.message().contains(
                "allowed: api_key (or key, api_token, token), base_url (or url), app (or app_name), org (or org_slug, organization)"
            ),
            "{e}"
        );
    }
}

//! Canonical GPU names and the per-provider mapping table.
//!
//! Users name GPUs once (`h100`, `A100-80G`, `rtx_4090`); each provider maps the
//! canonical [`Gpu`] to its own identifier through [`Gpu::provider_id`]. A GPU a
//! provider does not offer is a [`ErrorKind::Validation`](crate::ErrorKind::Validation)
//! error that lists what that provider has ([`Gpu::for_provider`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

macro_rules! gpus {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, [$($alias:literal),*], mem $mem:expr,
        runpod [$($rp:literal),*], lambda [$($la:literal),*], vast [$($va:literal),*],
        fly [$($fl:literal),*]; )*) => {
        /// A GPU model, named once for every provider.
        ///
        /// Each name fixes the model, the memory and, where the name says so, the form
        /// factor (`a100_sxm4_80g`). A name that leaves the form factor open
        /// (`a100_80g`: an 80 GB A100, SXM4 or PCIe) maps to the set of native ids
        /// that all match it ([`Gpu::provider_ids`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[allow(non_camel_case_types)]
        pub enum Gpu {
            $( $(#[$doc])* $variant, )*
        }

        impl Gpu {
            /// Every canonical GPU, in table order.
            pub const ALL: &'static [Gpu] = &[$(Gpu::$variant),*];

            /// The canonical name (`h100`, `a100_sxm4_80g`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(Gpu::$variant => $name,)* }
            }

            /// GPU memory in GB as the card is sold (80 for an 80 GB A100).
            pub fn memory_gb(self) -> u32 {
                match self { $(Gpu::$variant => $mem,)* }
            }

            fn aliases(self) -> &'static [&'static str] {
                match self { $(Gpu::$variant => &[$($alias),*],)* }
            }

            /// Every identifier `provider` uses for this GPU, most preferred first; empty
            /// when the provider does not offer it. Every id in the list matches the
            /// canonical name (model, memory and any form factor the name fixes).
            ///
            /// Known providers: `runpod` (gpuTypeId), `lambda` (instance-type fragment,
            /// e.g. `h100_pcie` in `gpu_1x_h100_pcie`), `vast` (`gpu_name`; Vast's names
            /// do not carry memory, so Vast also bounds `gpu_ram` by
            /// [`memory_gb`](Self::memory_gb)), `fly` (`gpu_kind`); `mock` offers every
            /// GPU under its canonical name.
            pub fn provider_ids(self, provider: &str) -> &'static [&'static str] {
                match provider {
                    "runpod" => match self { $(Gpu::$variant => &[$($rp),*],)* },
                    "lambda" => match self { $(Gpu::$variant => &[$($la),*],)* },
                    "vast" => match self { $(Gpu::$variant => &[$($va),*],)* },
                    "fly" => match self { $(Gpu::$variant => &[$($fl),*],)* },
                    "mock" => match self { $(Gpu::$variant => &[$name],)* },
                    _ => &[],
                }
            }
        }
    };
}

gpus! {
    /// NVIDIA B200 (180 GB).
    B200 = "b200", [], mem 180, runpod ["NVIDIA B200"], lambda ["b200_sxm6"], vast ["B200"], fly [];
    /// NVIDIA H200 SXM (141 GB).
    H200 = "h200", ["h200_sxm"], mem 141, runpod ["NVIDIA H200"], lambda [], vast ["H200"], fly [];
    /// NVIDIA H200 NVL (141 GB, PCIe).
    H200_NVL = "h200_nvl", [], mem 141, runpod ["NVIDIA H200 NVL"], lambda [], vast [], fly [];
    /// NVIDIA GH200 Grace Hopper (96 GB).
    GH200 = "gh200", [], mem 96, runpod [], lambda ["gh200"], vast ["GH200 SXM"], fly [];
    /// NVIDIA H100 80 GB, the provider's default form factor (SXM where offered; on
    /// Lambda, which lists both, either).
    H100 = "h100", [], mem 80, runpod ["NVIDIA H100 80GB HBM3"], lambda ["h100_sxm5", "h100_pcie"], vast ["H100 SXM"], fly [];
    /// NVIDIA H100 PCIe (80 GB).
    H100_PCIE = "h100_pcie", [], mem 80, runpod ["NVIDIA H100 PCIe"], lambda ["h100_pcie"], vast ["H100 PCIE"], fly [];
    /// NVIDIA H100 SXM (80 GB).
    H100_SXM = "h100_sxm", ["h100_sxm5"], mem 80, runpod ["NVIDIA H100 80GB HBM3"], lambda ["h100_sxm5"], vast ["H100 SXM"], fly [];
    /// NVIDIA H100 NVL (94 GB).
    H100_NVL = "h100_nvl", [], mem 94, runpod ["NVIDIA H100 NVL"], lambda [], vast [], fly [];
    /// NVIDIA A100 80 GB, SXM4 or PCIe (whichever the provider has; see the
    /// form-factor names to fix it).
    A100_80G = "a100_80g", ["a100_80gb"], mem 80, runpod ["NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"], lambda ["a100_80gb_sxm4"], vast ["A100 SXM4", "A100 PCIE"], fly ["a100-sxm4-80gb"];
    /// NVIDIA A100 SXM4 80 GB.
    A100_SXM4_80G = "a100_sxm4_80g", ["a100_80g_sxm4", "a100_sxm_80g", "a100_80gb_sxm4"], mem 80, runpod ["NVIDIA A100-SXM4-80GB"], lambda ["a100_80gb_sxm4"], vast ["A100 SXM4"], fly ["a100-sxm4-80gb"];
    /// NVIDIA A100 PCIe 80 GB.
    A100_PCIE_80G = "a100_pcie_80g", ["a100_80g_pcie", "a100_80gb_pcie"], mem 80, runpod ["NVIDIA A100 80GB PCIe"], lambda [], vast ["A100 PCIE"], fly [];
    /// NVIDIA A100 40 GB, SXM4 or PCIe (whichever the provider has).
    A100_40G = "a100_40g", ["a100_40gb"], mem 40, runpod [], lambda ["a100", "a100_sxm4"], vast ["A100 PCIE", "A100 SXM4"], fly ["a100-pcie-40gb"];
    /// NVIDIA A100 SXM4 40 GB.
    A100_SXM4_40G = "a100_sxm4_40g", ["a100_40g_sxm4", "a100_sxm_40g"], mem 40, runpod [], lambda ["a100_sxm4"], vast ["A100 SXM4"], fly [];
    /// NVIDIA A100 PCIe 40 GB.
    A100_PCIE_40G = "a100_pcie_40g", ["a100_40g_pcie"], mem 40, runpod [], lambda ["a100"], vast ["A100 PCIE"], fly ["a100-pcie-40gb"];
    /// NVIDIA A40 (48 GB).
    A40 = "a40", [], mem 48, runpod ["NVIDIA A40"], lambda [], vast [], fly [];
    /// NVIDIA L40S (48 GB).
    L40S = "l40s", [], mem 48, runpod ["NVIDIA L40S"], lambda [], vast ["L40S"], fly ["l40s"];
    /// NVIDIA L40 (48 GB).
    L40 = "l40", [], mem 48, runpod ["NVIDIA L40"], lambda [], vast ["L40"], fly [];
    /// NVIDIA L4 (24 GB).
    L4 = "l4", [], mem 24, runpod ["NVIDIA L4"], lambda [], vast ["L4"], fly [];
    /// NVIDIA A10 (24 GB).
    A10 = "a10", [], mem 24, runpod [], lambda ["a10"], vast ["A10"], fly ["a10"];
    /// NVIDIA RTX A6000 (48 GB).
    A6000 = "a6000", ["rtx_a6000"], mem 48, runpod ["NVIDIA RTX A6000"], lambda ["a6000"], vast ["RTX A6000"], fly [];
    /// NVIDIA RTX A5000 (24 GB).
    A5000 = "a5000", ["rtx_a5000"], mem 24, runpod ["NVIDIA RTX A5000"], lambda [], vast ["RTX A5000"], fly [];
    /// NVIDIA RTX A4000 (16 GB).
    A4000 = "a4000", ["rtx_a4000"], mem 16, runpod ["NVIDIA RTX A4000"], lambda [], vast ["RTX A4000"], fly [];
    /// NVIDIA RTX 6000 Ada (48 GB).
    RTX_6000_ADA = "rtx_6000_ada", ["rtx6000_ada", "6000_ada"], mem 48, runpod ["NVIDIA RTX 6000 Ada Generation"], lambda [], vast ["RTX 6000Ada"], fly [];
    /// NVIDIA RTX PRO 6000 Blackwell (96 GB), any edition (server, workstation, Max-Q).
    RTX_PRO_6000 = "rtx_pro_6000", ["rtx_pro_6000_blackwell"], mem 96, runpod ["NVIDIA RTX PRO 6000 Blackwell Server Edition", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"], lambda [], vast [], fly [];
    /// NVIDIA RTX PRO 6000 Blackwell Server Edition (96 GB).
    RTX_PRO_6000_SERVER = "rtx_pro_6000_server", [], mem 96, runpod ["NVIDIA RTX PRO 6000 Blackwell Server Edition"], lambda [], vast [], fly [];
    /// NVIDIA RTX PRO 6000 Blackwell Workstation Edition (96 GB).
    RTX_PRO_6000_WORKSTATION = "rtx_pro_6000_workstation", [], mem 96, runpod ["NVIDIA RTX PRO 6000 Blackwell Workstation Edition"], lambda [], vast [], fly [];
    /// NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition (96 GB).
    RTX_PRO_6000_MAX_Q = "rtx_pro_6000_max_q", ["rtx_pro_6000_maxq"], mem 96, runpod ["NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"], lambda [], vast [], fly [];
    /// NVIDIA GeForce RTX 5090 (32 GB).
    RTX_5090 = "rtx_5090", ["5090", "rtx5090"], mem 32, runpod ["NVIDIA GeForce RTX 5090"], lambda [], vast ["RTX 5090"], fly [];
    /// NVIDIA GeForce RTX 4090 (24 GB).
    RTX_4090 = "rtx_4090", ["4090", "rtx4090"], mem 24, runpod ["NVIDIA GeForce RTX 4090"], lambda [], vast ["RTX 4090"], fly [];
    /// NVIDIA GeForce RTX 3090 (24 GB).
    RTX_3090 = "rtx_3090", ["3090", "rtx3090"], mem 24, runpod ["NVIDIA GeForce RTX 3090"], lambda [], vast ["RTX 3090"], fly [];
    /// NVIDIA Tesla V100 16 GB, any form factor (Lambda does not say which it has).
    V100_16G = "v100_16g", ["v100_16gb"], mem 16, runpod ["Tesla V100-SXM2-16GB", "Tesla V100-PCIE-16GB", "Tesla V100-FHHL-16GB"], lambda ["v100"], vast [], fly [];
    /// NVIDIA Tesla V100 32 GB, SXM2 or PCIe.
    V100_32G = "v100_32g", ["v100_32gb"], mem 32, runpod ["Tesla V100-SXM2-32GB", "Tesla V100-PCIE-32GB"], lambda [], vast [], fly [];
    /// NVIDIA Tesla V100 SXM2 16 GB.
    V100_SXM2_16G = "v100_sxm2_16g", [], mem 16, runpod ["Tesla V100-SXM2-16GB"], lambda [], vast [], fly [];
    /// NVIDIA Tesla V100 SXM2 32 GB.
    V100_SXM2_32G = "v100_sxm2_32g", [], mem 32, runpod ["Tesla V100-SXM2-32GB"], lambda [], vast [], fly [];
    /// NVIDIA Tesla V100 PCIe 16 GB.
    V100_PCIE_16G = "v100_pcie_16g", [], mem 16, runpod ["Tesla V100-PCIE-16GB"], lambda [], vast [], fly [];
    /// NVIDIA Tesla V100 PCIe 32 GB.
    V100_PCIE_32G = "v100_pcie_32g", [], mem 32, runpod ["Tesla V100-PCIE-32GB"], lambda [], vast [], fly [];
    /// NVIDIA Tesla V100 FHHL 16 GB (a low-profile PCIe card).
    V100_FHHL_16G = "v100_fhhl_16g", [], mem 16, runpod ["Tesla V100-FHHL-16GB"], lambda [], vast [], fly [];
    /// AMD Instinct MI300X (192 GB).
    MI300X = "mi300x", [], mem 192, runpod ["AMD Instinct MI300X OAM"], lambda [], vast [], fly [];
}

/// Old or loose names that fit more than one canonical GPU, with the choices; parsing
/// one is a `Validation` error that lists them.
const AMBIGUOUS: &[(&str, &[Gpu])] = &[
    (
        "a100",
        &[
            Gpu::A100_80G,
            Gpu::A100_SXM4_80G,
            Gpu::A100_PCIE_80G,
            Gpu::A100_40G,
            Gpu::A100_SXM4_40G,
            Gpu::A100_PCIE_40G,
        ],
    ),
    ("a100_sxm4", &[Gpu::A100_SXM4_80G, Gpu::A100_SXM4_40G]),
    ("a100_pcie", &[Gpu::A100_PCIE_80G, Gpu::A100_PCIE_40G]),
    (
        "v100",
        &[
            Gpu::V100_16G,
            Gpu::V100_32G,
            Gpu::V100_SXM2_16G,
            Gpu::V100_SXM2_32G,
            Gpu::V100_PCIE_16G,
            Gpu::V100_PCIE_32G,
            Gpu::V100_FHHL_16G,
        ],
    ),
    ("v100_sxm2", &[Gpu::V100_SXM2_16G, Gpu::V100_SXM2_32G]),
    ("v100_pcie", &[Gpu::V100_PCIE_16G, Gpu::V100_PCIE_32G]),
];

/// Prefix of a provider's own GPU id given where a canonical name is expected
/// (`native:NVIDIA A40`); see [`GpuChoice`].
pub const NATIVE_PREFIX: &str = "native:";

fn normalise(s: &str) -> String {
    s.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect()
}

impl Gpu {
    /// The provider's preferred identifier for this GPU (the first of
    /// [`provider_ids`](Self::provider_ids)), if the provider offers it.
    pub fn provider_id(self, provider: &str) -> Option<&'static str> {
        self.provider_ids(provider).first().copied()
    }

    /// The canonical GPUs `provider` offers, in table order.
    pub fn for_provider(provider: &str) -> Vec<Gpu> {
        Gpu::ALL
            .iter()
            .copied()
            .filter(|g| g.provider_id(provider).is_some())
            .collect()
    }

    /// The provider's preferred id, or a `Validation` error listing the GPUs `provider`
    /// offers and how to name one the table lacks.
    pub fn require_provider_id(self, provider: &str) -> Result<&'static str> {
        self.require_provider_ids(provider).map(|ids| ids[0])
    }

    /// Every provider id (non-empty), or a `Validation` error listing the GPUs
    /// `provider` offers and how to name one the table lacks.
    pub fn require_provider_ids(self, provider: &str) -> Result<&'static [&'static str]> {
        let ids = self.provider_ids(provider);
        if !ids.is_empty() {
            return Ok(ids);
        }
        let offered: Vec<&str> = Gpu::for_provider(provider)
            .into_iter()
            .map(Gpu::as_str)
            .collect();
        Err(Error::validation(
            "gpu",
            format!(
                "{self} is not offered by {provider}; {provider} offers: {}; or name the provider's own id with --gpu {NATIVE_PREFIX}ID",
                offered.join(", ")
            ),
        ))
    }

    /// Whether a machine with GPU `offered` is what a request for `self` asked for:
    /// the same GPU, or `self` leaves the form factor open and `offered` is one of its
    /// form factors with the same memory (`a100_80g` covers `a100_sxm4_80g`).
    pub fn covers(self, offered: Gpu) -> bool {
        use Gpu::*;
        self == offered
            || matches!(
                (self, offered),
                (H100, H100_SXM | H100_PCIE)
                    | (A100_80G, A100_SXM4_80G | A100_PCIE_80G)
                    | (A100_40G, A100_SXM4_40G | A100_PCIE_40G)
                    | (
                        RTX_PRO_6000,
                        RTX_PRO_6000_SERVER | RTX_PRO_6000_WORKSTATION | RTX_PRO_6000_MAX_Q
                    )
                    | (V100_16G, V100_SXM2_16G | V100_PCIE_16G | V100_FHHL_16G)
                    | (V100_32G, V100_SXM2_32G | V100_PCIE_32G)
            )
    }

    /// The bounds a card of this GPU reports its memory in, in MB (MiB, as Vast's
    /// `gpu_ram`): the sold size ± 10 % — wide enough for what drivers report (an
    /// "80 GB" card shows 79–82 GiB), narrow enough that the next size of the same model
    /// (40 vs 80 GB, 80 vs 94 GB, 16 vs 32 GB) is outside.
    pub fn memory_mb_bounds(self) -> (u64, u64) {
        let mb = u64::from(self.memory_gb()) * 1024;
        (mb * 9 / 10, mb * 11 / 10)
    }

    /// Whether `mb` (memory per GPU in MB) is within [`memory_mb_bounds`](Self::memory_mb_bounds).
    pub fn memory_matches_mb(self, mb: f64) -> bool {
        let (lo, hi) = self.memory_mb_bounds();
        mb >= lo as f64 && mb <= hi as f64
    }

    /// The canonical GPU a provider's identifier means, if any (reverse lookup).
    ///
    /// Where several canonical names share one id (`h100` and `h100_sxm`), the most
    /// specific one wins (the one with fewest ids, then the later in table order).
    pub fn from_provider_id(provider: &str, id: &str) -> Option<Gpu> {
        Gpu::from_provider_id_and_memory(provider, id, None)
    }

    /// As [`from_provider_id`](Self::from_provider_id), also matching the memory per GPU
    /// in MB where the provider reports it (Vast's `gpu_name` `A100 SXM4` is a 40 GB or
    /// an 80 GB card): only GPUs whose memory bounds hold `memory_mb` count. Without a
    /// memory, an id that fits GPUs of different memory sizes maps to none.
    pub fn from_provider_id_and_memory(
        provider: &str,
        id: &str,
        memory_mb: Option<f64>,
    ) -> Option<Gpu> {
        let matching: Vec<Gpu> = Gpu::ALL
            .iter()
            .copied()
            .filter(|g| {
                g.provider_ids(provider)
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(id))
            })
            .filter(|g| memory_mb.is_none_or(|m| g.memory_matches_mb(m)))
            .collect();
        let first = matching.first()?;
        if matching.iter().any(|g| g.memory_gb() != first.memory_gb()) {
            return None;
        }
        matching
            .iter()
            .copied()
            .rev()
            .min_by_key(|g| g.provider_ids(provider).len())
    }

    /// Names of every canonical GPU, comma-separated (for error messages).
    pub fn all_names() -> String {
        Gpu::ALL
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Gpu {
    type Err = Error;

    /// Case-insensitive; `-` and spaces count as `_` (`H100`, `a100-sxm4-80g`,
    /// `RTX 4090`). A name that fits several GPUs (`a100`: 40 or 80 GB, SXM4 or PCIe) is
    /// refused with the choices.
    fn from_str(s: &str) -> Result<Gpu> {
        let n = normalise(s);
        if let Some(g) = Gpu::ALL
            .iter()
            .copied()
            .find(|g| g.as_str() == n || g.aliases().contains(&n.as_str()))
        {
            return Ok(g);
        }
        if let Some((_, choices)) = AMBIGUOUS.iter().find(|(a, _)| *a == n) {
            let names: Vec<&str> = choices.iter().map(|g| g.as_str()).collect();
            return Err(Error::validation(
                "gpu",
                format!(
                    "{s:?} is ambiguous (memory or form factor); choose one of: {}",
                    names.join(", ")
                ),
            ));
        }
        Err(Error::validation(
            "gpu",
            format!(
                "unknown GPU {s:?}; allowed: {}; or a provider's own id as {NATIVE_PREFIX}ID",
                Gpu::all_names()
            ),
        ))
    }
}

/// What a request asks for by way of a GPU: a canonical [`Gpu`], or a provider's own
/// GPU id for one the table lacks (`native:NVIDIA A40` on RunPod, `native:RTX 5880Ada`
/// on Vast), passed to the provider as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GpuChoice {
    /// A canonical GPU.
    Canonical(Gpu),
    /// A provider's own id, used verbatim (no table lookup, no memory bound).
    Native(String),
}

impl FromStr for GpuChoice {
    type Err = Error;

    /// `native:ID` (the id verbatim, surrounding spaces trimmed; must not be empty) or
    /// a canonical name ([`Gpu::from_str`]).
    fn from_str(s: &str) -> Result<GpuChoice> {
        let t = s.trim();
        match t.get(..NATIVE_PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(NATIVE_PREFIX) => {
                let id = t[NATIVE_PREFIX.len()..].trim();
                if id.is_empty() {
                    return Err(Error::validation(
                        "gpu",
                        format!("{s:?} names no id; use {NATIVE_PREFIX}ID with the provider's own GPU id (e.g. {NATIVE_PREFIX}\"NVIDIA A40\")"),
                    ));
                }
                Ok(GpuChoice::Native(id.to_string()))
            }
            _ => t.parse().map(GpuChoice::Canonical),
        }
    }
}

impl fmt::Display for GpuChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuChoice::Canonical(g) => g.fmt(f),
            GpuChoice::Native(id) => write!(f, "{NATIVE_PREFIX}{id}"),
        }
    }
}

impl Serialize for Gpu {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Gpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Gpu, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!("h100".parse::<Gpu>().unwrap(), Gpu::H100);
        assert_eq!("H100".parse::<Gpu>().unwrap(), Gpu::H100);
        assert_eq!("a100-80g".parse::<Gpu>().unwrap(), Gpu::A100_80G);
        assert_eq!("A100-SXM4-80G".parse::<Gpu>().unwrap(), Gpu::A100_SXM4_80G);
        assert_eq!("RTX 4090".parse::<Gpu>().unwrap(), Gpu::RTX_4090);
        assert_eq!("rtx 5090".parse::<Gpu>().unwrap(), Gpu::RTX_5090);
        let e = "nonsense".parse::<Gpu>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("rtx_4090"));
        assert!(e.message().contains("native:"), "{e}");
    }

    #[test]
    fn ambiguous_names_are_refused_with_the_choices() {
        for (name, must) in [
            ("a100", ["a100_sxm4_80g", "a100_40g"]),
            ("A100", ["a100_pcie_80g", "a100_pcie_40g"]),
            ("v100", ["v100_16g", "v100_sxm2_32g"]),
            ("a100_sxm4", ["a100_sxm4_80g", "a100_sxm4_40g"]),
        ] {
            let e = name.parse::<Gpu>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.message().starts_with("gpu: "), "{e}");
            assert!(e.message().contains("ambiguous"), "{e}");
            for m in must {
                assert!(e.message().contains(m), "{name}: {e}");
            }
        }
        // Every choice offered parses.
        for (_, choices) in AMBIGUOUS {
            for g in *choices {
                assert_eq!(g.as_str().parse::<Gpu>().unwrap(), *g);
            }
        }
    }

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for g in Gpu::ALL {
            for n in std::iter::once(g.as_str()).chain(g.aliases().iter().copied()) {
                assert_eq!(normalise(n), n, "{n} is not in normal form");
                assert!(seen.insert(n), "{n} names two GPUs");
                assert!(!AMBIGUOUS.iter().any(|(a, _)| *a == n), "{n}");
            }
        }
    }

    #[test]
    fn an_open_form_factor_covers_its_form_factors_with_the_same_memory() {
        for g in Gpu::ALL {
            for o in Gpu::ALL {
                if g.covers(*o) {
                    assert_eq!(g.memory_gb(), o.memory_gb(), "{g} covers {o}");
                    // Every id of the specific GPU is one the open name accepts (but
                    // `h100` keeps its old meaning: SXM where the provider has it).
                    if *g == Gpu::H100 {
                        continue;
                    }
                    for p in ["runpod", "lambda", "vast", "fly"] {
                        for id in o.provider_ids(p) {
                            assert!(
                                g.provider_ids(p).contains(id) || g.provider_ids(p).is_empty(),
                                "{p}: {g} lacks {id} of {o}"
                            );
                        }
                    }
                }
            }
        }
        assert!(Gpu::A100_80G.covers(Gpu::A100_PCIE_80G));
        assert!(!Gpu::A100_80G.covers(Gpu::A100_SXM4_40G));
        assert!(!Gpu::A100_SXM4_80G.covers(Gpu::A100_PCIE_80G));
    }

    #[test]
    fn memory_bounds_separate_the_sizes_of_one_model() {
        assert!(Gpu::A100_80G.memory_matches_mb(81920.0));
        assert!(Gpu::A100_80G.memory_matches_mb(80000.0));
        assert!(!Gpu::A100_80G.memory_matches_mb(40960.0));
        assert!(!Gpu::H100.memory_matches_mb(95830.0), "H100 NVL (94 GB)");
        assert!(Gpu::H100_NVL.memory_matches_mb(95830.0));
        assert!(Gpu::H200.memory_matches_mb(143771.0));
        assert!(Gpu::RTX_4090.memory_matches_mb(24564.0));
        assert!(!Gpu::V100_32G.memory_matches_mb(16384.0));
    }

    #[test]
    fn native_ids_parse_verbatim() {
        assert_eq!(
            "native:NVIDIA A40".parse::<GpuChoice>().unwrap(),
            GpuChoice::Native("NVIDIA A40".into())
        );
        assert_eq!(
            " NATIVE: RTX 5880Ada ".parse::<GpuChoice>().unwrap(),
            GpuChoice::Native("RTX 5880Ada".into())
        );
        assert_eq!(
            "h100".parse::<GpuChoice>().unwrap(),
            GpuChoice::Canonical(Gpu::H100)
        );
        let e = "native:".parse::<GpuChoice>().unwrap_err();
        assert!(e.message().starts_with("gpu: "), "{e}");
        assert_eq!(
            GpuChoice::Native("NVIDIA A40".into()).to_string(),
            "native:NVIDIA A40"
        );
    }

    #[test]
    fn unmapped_gpu_lists_offered() {
        let e = Gpu::MI300X.require_provider_id("lambda").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("a10"), "{e}");
        assert!(e.message().contains("native:"), "{e}");
        assert_eq!(
            Gpu::RTX_4090.require_provider_id("runpod").unwrap(),
            "NVIDIA GeForce RTX 4090"
        );
        assert_eq!(
            Gpu::from_provider_id("runpod", "NVIDIA H100 80GB HBM3"),
            Some(Gpu::H100_SXM)
        );
        assert_eq!(
            Gpu::from_provider_id("runpod", "NVIDIA A100-SXM4-80GB"),
            Some(Gpu::A100_SXM4_80G)
        );
        assert_eq!(
            Gpu::from_provider_id("runpod", "NVIDIA A100 80GB PCIe"),
            Some(Gpu::A100_PCIE_80G)
        );
        assert_eq!(
            Gpu::from_provider_id("runpod", "Tesla V100-FHHL-16GB"),
            Some(Gpu::V100_FHHL_16G)
        );
    }

    #[test]
    fn the_a100s_are_explicit_everywhere() {
        // Before: a100_80g was PCIe on RunPod and SXM4 elsewhere.
        assert_eq!(
            Gpu::A100_SXM4_80G.provider_ids("runpod"),
            ["NVIDIA A100-SXM4-80GB"]
        );
        assert_eq!(
            Gpu::A100_PCIE_80G.provider_ids("runpod"),
            ["NVIDIA A100 80GB PCIe"]
        );
        assert_eq!(
            Gpu::A100_SXM4_80G.provider_ids("lambda"),
            ["a100_80gb_sxm4"]
        );
        assert!(Gpu::A100_PCIE_80G.provider_ids("lambda").is_empty());
        assert_eq!(Gpu::A100_SXM4_40G.provider_ids("lambda"), ["a100_sxm4"]);
        for g in [Gpu::A100_80G, Gpu::A100_SXM4_80G, Gpu::A100_PCIE_80G] {
            assert_eq!(g.memory_gb(), 80);
        }
        for g in [Gpu::A100_40G, Gpu::A100_SXM4_40G, Gpu::A100_PCIE_40G] {
            assert_eq!(g.memory_gb(), 40);
            assert!(
                g.provider_ids("runpod").is_empty(),
                "RunPod sells no 40 GB A100"
            );
        }
    }

    /// RunPod's published gpuTypeId enum (REST v1), copied from the spec.
    const RUNPOD_IDS: &str = include_str!("../../tests/fixtures/runpod/rest-v1.gpuTypeIds.json");
    /// Lambda's published instance types (the client's test data, see fixtures/SOURCES.md).
    const LAMBDA_TYPES: &str =
        include_str!("../../tests/fixtures/lambda/samples/m_instance_types_response.json");
    /// Vast's published spec.
    const VAST_SPEC: &str = include_str!("../../tests/fixtures/vast/openapi.yaml");
    /// Fly's documented fly.toml corpus (the two files that name a `gpu_kind`).
    const FLY_DOCS: [&str; 2] = [
        include_str!("../../tests/fixtures/fly/flytoml-corpus/superfly__flyctl__internal_appconfig_testdata_full-reference.toml"),
        include_str!("../../tests/fixtures/fly/flytoml-corpus/fly-apps__ollama-open-webui__fly.toml"),
    ];

    /// Vast and Fly ids that were in the table before ids had to come from the published
    /// documents, which do not list them (Vast's spec names only a few GPUs, Fly's only
    /// two kinds). Pinned so no new undocumented id slips in.
    const UNDOCUMENTED: &[(&str, &str)] = &[
        ("vast", "B200"),
        ("vast", "H200"),
        ("vast", "GH200 SXM"),
        ("vast", "H100 PCIE"),
        ("vast", "A100 SXM4"),
        ("vast", "A100 PCIE"),
        ("vast", "L40S"),
        ("vast", "L40"),
        ("vast", "L4"),
        ("vast", "A10"),
        ("vast", "RTX A6000"),
        ("vast", "RTX A4000"),
        ("vast", "RTX 6000Ada"),
        ("fly", "a100-sxm4-80gb"),
        ("fly", "a10"),
    ];

    #[test]
    fn every_native_id_is_spelled_as_the_provider_publishes_it() {
        let runpod: Vec<String> = serde_json::from_str(RUNPOD_IDS).unwrap();
        let lambda: serde_json::Value = serde_json::from_str(LAMBDA_TYPES).unwrap();
        let lambda_types: Vec<&String> = lambda["data"].as_object().unwrap().keys().collect();
        for g in Gpu::ALL {
            for id in g.provider_ids("runpod") {
                assert!(
                    runpod.iter().any(|r| r == id),
                    "{g}: runpod id {id:?} is not published"
                );
            }
            for frag in g.provider_ids("lambda") {
                assert!(
                    lambda_types
                        .iter()
                        .any(|t| t.ends_with(&format!("x_{frag}"))),
                    "{g}: lambda fragment {frag:?} names no published instance type"
                );
            }
            for id in g.provider_ids("vast") {
                let documented =
                    VAST_SPEC.contains(id) || VAST_SPEC.contains(&id.replace(' ', "_"));
                assert!(
                    documented || UNDOCUMENTED.contains(&("vast", id)),
                    "{g}: vast name {id:?} is not in Vast's published spec"
                );
            }
            for id in g.provider_ids("fly") {
                let documented = FLY_DOCS.iter().any(|d| d.contains(&format!("\"{id}\"")));
                assert!(
                    documented || UNDOCUMENTED.contains(&("fly", id)),
                    "{g}: fly gpu_kind {id:?} is not documented"
                );
            }
        }
    }

    #[test]
    fn the_undocumented_list_is_honest() {
        for (p, id) in UNDOCUMENTED {
            assert!(
                Gpu::ALL.iter().any(|g| g.provider_ids(p).contains(id)),
                "{p} {id} is no longer in the table: drop it from UNDOCUMENTED"
            );
            let documented = match *p {
                "vast" => VAST_SPEC.contains(id) || VAST_SPEC.contains(&id.replace(' ', "_")),
                _ => FLY_DOCS.iter().any(|d| d.contains(&format!("\"{id}\""))),
            };
            assert!(
                !documented,
                "{p} {id} is documented: drop it from UNDOCUMENTED"
            );
        }
    }

    #[test]
    fn what_the_providers_sell_today_is_named() {
        for (g, id) in [
            (Gpu::RTX_5090, "NVIDIA GeForce RTX 5090"),
            (Gpu::H100_NVL, "NVIDIA H100 NVL"),
            (Gpu::H200_NVL, "NVIDIA H200 NVL"),
            (Gpu::A100_SXM4_80G, "NVIDIA A100-SXM4-80GB"),
            (Gpu::A40, "NVIDIA A40"),
            (
                Gpu::RTX_PRO_6000_SERVER,
                "NVIDIA RTX PRO 6000 Blackwell Server Edition",
            ),
            (Gpu::V100_SXM2_32G, "Tesla V100-SXM2-32GB"),
        ] {
            assert_eq!(g.provider_ids("runpod"), [id]);
            assert_eq!(Gpu::from_provider_id("runpod", id), Some(g));
        }
        assert_eq!(Gpu::RTX_5090.provider_ids("vast"), ["RTX 5090"]);
        assert_eq!(Gpu::V100_16G.provider_ids("lambda"), ["v100"]);
    }

    #[test]
    fn serde_round_trip() {
        let j = serde_json::to_string(&Gpu::A100_80G).unwrap();
        assert_eq!(j, "\"a100_80g\"");
        assert_eq!(serde_json::from_str::<Gpu>(&j).unwrap(), Gpu::A100_80G);
    }
}

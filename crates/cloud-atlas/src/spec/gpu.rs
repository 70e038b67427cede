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
        runpod $rp:expr, lambda $la:expr, vast $va:expr, fly $fl:expr; )*) => {
        /// A GPU model, named once for every provider.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[allow(non_camel_case_types)]
        pub enum Gpu {
            $( $(#[$doc])* $variant, )*
        }

        impl Gpu {
            /// Every canonical GPU, in table order.
            pub const ALL: &'static [Gpu] = &[$(Gpu::$variant),*];

            /// The canonical name (`h100`, `a100_80g`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(Gpu::$variant => $name,)* }
            }

            /// GPU memory in GiB.
            pub fn memory_gb(self) -> u32 {
                match self { $(Gpu::$variant => $mem,)* }
            }

            fn aliases(self) -> &'static [&'static str] {
                match self { $(Gpu::$variant => &[$($alias),*],)* }
            }

            /// The provider's own identifier for this GPU, if the provider offers it.
            ///
            /// Known providers: `runpod` (gpuTypeId), `lambda` (instance-type fragment, e.g.
            /// `h100_pcie` in `gpu_1x_h100_pcie`), `vast` (`gpu_name`), `fly` (`gpu_kind`);
            /// `mock` offers every GPU under its canonical name.
            pub fn provider_id(self, provider: &str) -> Option<&'static str> {
                let id: Option<&'static str> = match provider {
                    "runpod" => match self { $(Gpu::$variant => $rp,)* },
                    "lambda" => match self { $(Gpu::$variant => $la,)* },
                    "vast" => match self { $(Gpu::$variant => $va,)* },
                    "fly" => match self { $(Gpu::$variant => $fl,)* },
                    "mock" => Some(self.as_str()),
                    _ => None,
                };
                id
            }
        }
    };
}

gpus! {
    /// NVIDIA B200 (180 GB).
    B200 = "b200", [], mem 180, runpod Some("NVIDIA B200"), lambda Some("b200_sxm6"), vast Some("B200"), fly None;
    /// NVIDIA H200 (141 GB).
    H200 = "h200", [], mem 141, runpod Some("NVIDIA H200"), lambda None, vast Some("H200"), fly None;
    /// NVIDIA GH200 Grace Hopper (96 GB).
    GH200 = "gh200", [], mem 96, runpod None, lambda Some("gh200"), vast Some("GH200 SXM"), fly None;
    /// NVIDIA H100, any form factor (the provider's default H100: SXM where offered).
    H100 = "h100", [], mem 80, runpod Some("NVIDIA H100 80GB HBM3"), lambda Some("h100_sxm5"), vast Some("H100 SXM"), fly None;
    /// NVIDIA H100 PCIe (80 GB).
    H100_PCIE = "h100_pcie", [], mem 80, runpod Some("NVIDIA H100 PCIe"), lambda Some("h100_pcie"), vast Some("H100 PCIE"), fly None;
    /// NVIDIA H100 SXM (80 GB).
    H100_SXM = "h100_sxm", ["h100_sxm5"], mem 80, runpod Some("NVIDIA H100 80GB HBM3"), lambda Some("h100_sxm5"), vast Some("H100 SXM"), fly None;
    /// NVIDIA A100 80 GB.
    A100_80G = "a100_80g", ["a100_80gb", "a100"], mem 80, runpod Some("NVIDIA A100 80GB PCIe"), lambda Some("a100_80gb_sxm4"), vast Some("A100 SXM4"), fly Some("a100-sxm4-80gb");
    /// NVIDIA A100 40 GB.
    A100_40G = "a100_40g", ["a100_40gb"], mem 40, runpod None, lambda Some("a100_sxm4"), vast Some("A100 PCIE"), fly Some("a100-pcie-40gb");
    /// NVIDIA L40S (48 GB).
    L40S = "l40s", [], mem 48, runpod Some("NVIDIA L40S"), lambda None, vast Some("L40S"), fly Some("l40s");
    /// NVIDIA L40 (48 GB).
    L40 = "l40", [], mem 48, runpod Some("NVIDIA L40"), lambda None, vast Some("L40"), fly None;
    /// NVIDIA L4 (24 GB).
    L4 = "l4", [], mem 24, runpod Some("NVIDIA L4"), lambda None, vast Some("L4"), fly None;
    /// NVIDIA A10 (24 GB).
    A10 = "a10", [], mem 24, runpod None, lambda Some("a10"), vast Some("A10"), fly Some("a10");
    /// NVIDIA RTX A6000 (48 GB).
    A6000 = "a6000", ["rtx_a6000"], mem 48, runpod Some("NVIDIA RTX A6000"), lambda Some("a6000"), vast Some("RTX A6000"), fly None;
    /// NVIDIA RTX A5000 (24 GB).
    A5000 = "a5000", ["rtx_a5000"], mem 24, runpod Some("NVIDIA RTX A5000"), lambda None, vast Some("RTX A5000"), fly None;
    /// NVIDIA RTX A4000 (16 GB).
    A4000 = "a4000", ["rtx_a4000"], mem 16, runpod Some("NVIDIA RTX A4000"), lambda None, vast Some("RTX A4000"), fly None;
    /// NVIDIA RTX 6000 Ada (48 GB).
    RTX_6000_ADA = "rtx_6000_ada", ["rtx6000_ada", "6000_ada"], mem 48, runpod Some("NVIDIA RTX 6000 Ada Generation"), lambda None, vast Some("RTX 6000Ada"), fly None;
    /// NVIDIA GeForce RTX 4090 (24 GB).
    RTX_4090 = "rtx_4090", ["4090", "rtx4090"], mem 24, runpod Some("NVIDIA GeForce RTX 4090"), lambda None, vast Some("RTX 4090"), fly None;
    /// NVIDIA GeForce RTX 3090 (24 GB).
    RTX_3090 = "rtx_3090", ["3090", "rtx3090"], mem 24, runpod Some("NVIDIA GeForce RTX 3090"), lambda None, vast Some("RTX 3090"), fly None;
    /// AMD Instinct MI300X (192 GB).
    MI300X = "mi300x", [], mem 192, runpod Some("AMD Instinct MI300X OAM"), lambda None, vast None, fly None;
}

fn normalise(s: &str) -> String {
    s.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect()
}

impl Gpu {
    /// The canonical GPUs `provider` offers, in table order.
    pub fn for_provider(provider: &str) -> Vec<Gpu> {
        Gpu::ALL
            .iter()
            .copied()
            .filter(|g| g.provider_id(provider).is_some())
            .collect()
    }

    /// The provider id, or a `Validation` error listing the GPUs `provider` offers.
    pub fn require_provider_id(self, provider: &str) -> Result<&'static str> {
        self.provider_id(provider).ok_or_else(|| {
            let offered: Vec<&str> = Gpu::for_provider(provider)
                .into_iter()
                .map(Gpu::as_str)
                .collect();
            Error::validation(
                "gpu",
                format!(
                    "{self} is not offered by {provider}; {provider} offers: {}",
                    offered.join(", ")
                ),
            )
        })
    }

    /// The canonical GPU a provider's identifier means, if any (reverse lookup).
    ///
    /// Where several canonical names share one id (`h100` and `h100_sxm`), the most
    /// specific one wins.
    pub fn from_provider_id(provider: &str, id: &str) -> Option<Gpu> {
        let mut found = None;
        for g in Gpu::ALL {
            if g.provider_id(provider)
                .is_some_and(|p| p.eq_ignore_ascii_case(id))
            {
                found = Some(*g);
            }
        }
        found
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

    /// Case-insensitive; `-` and spaces count as `_` (`H100`, `a100-80g`, `RTX 4090`).
    fn from_str(s: &str) -> Result<Gpu> {
        let n = normalise(s);
        Gpu::ALL
            .iter()
            .copied()
            .find(|g| g.as_str() == n || g.aliases().contains(&n.as_str()))
            .ok_or_else(|| {
                Error::validation(
                    "gpu",
                    format!("unknown GPU {s:?}; allowed: {}", Gpu::all_names()),
                )
            })
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
        assert_eq!("RTX 4090".parse::<Gpu>().unwrap(), Gpu::RTX_4090);
        let e = "nonsense".parse::<Gpu>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("rtx_4090"));
    }

    #[test]
    fn unmapped_gpu_lists_offered() {
        let e = Gpu::MI300X.require_provider_id("lambda").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("a10"), "{e}");
        assert_eq!(
            Gpu::RTX_4090.require_provider_id("runpod").unwrap(),
            "NVIDIA GeForce RTX 4090"
        );
        assert_eq!(
            Gpu::from_provider_id("runpod", "NVIDIA H100 80GB HBM3"),
            Some(Gpu::H100_SXM)
        );
    }

    #[test]
    fn serde_round_trip() {
        let j = serde_json::to_string(&Gpu::A100_80G).unwrap();
        assert_eq!(j, "\"a100_80g\"");
        assert_eq!(serde_json::from_str::<Gpu>(&j).unwrap(), Gpu::A100_80G);
    }
}

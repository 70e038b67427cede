//! The mock's price table and stock: GPU × count, or vCPU + memory for CPU-only, and
//! storage for a stopped machine's disks. (Stock is `MockOptions::out_of_stock`.)

use crate::spec::{ComputeRequest, Gpu};

/// On-demand USD per GPU-hour.
pub(super) fn price_per_gpu(gpu: Gpu) -> f64 {
    match gpu {
        Gpu::B200 => 5.99,
        Gpu::H200 | Gpu::H200_NVL => 3.99,
        Gpu::GH200 => 3.19,
        Gpu::H100 | Gpu::H100_SXM => 2.99,
        Gpu::H100_PCIE => 2.39,
        Gpu::H100_NVL => 2.59,
        Gpu::A100_80G | Gpu::A100_SXM4_80G => 1.89,
        Gpu::A100_PCIE_80G => 1.64,
        Gpu::A100_40G | Gpu::A100_SXM4_40G | Gpu::A100_PCIE_40G => 1.29,
        Gpu::A40 => 0.44,
        Gpu::L40S => 0.86,
        Gpu::L40 => 0.79,
        Gpu::L4 => 0.43,
        Gpu::A10 => 0.75,
        Gpu::A6000 => 0.76,
        Gpu::A5000 => 0.36,
        Gpu::A4000 => 0.32,
        Gpu::RTX_6000_ADA => 0.77,
        Gpu::RTX_PRO_6000
        | Gpu::RTX_PRO_6000_SERVER
        | Gpu::RTX_PRO_6000_WORKSTATION
        | Gpu::RTX_PRO_6000_MAX_Q => 1.79,
        Gpu::RTX_5090 => 0.94,
        Gpu::RTX_4090 => 0.69,
        Gpu::RTX_3090 => 0.43,
        Gpu::V100_16G
        | Gpu::V100_32G
        | Gpu::V100_SXM2_16G
        | Gpu::V100_SXM2_32G
        | Gpu::V100_PCIE_16G
        | Gpu::V100_PCIE_32G
        | Gpu::V100_FHHL_16G => 0.29,
        Gpu::MI300X => 3.49,
    }
}

/// Storage price of a stopped machine's volume, USD per GB-hour ($0.10 per GB-month).
pub(super) const STORAGE_PER_GB_HOUR: f64 = 0.10 / 730.0;

/// USD per hour while the machine runs.
pub(super) fn running_rate(req: &ComputeRequest) -> f64 {
    match req.gpu {
        Some(g) => {
            let base = price_per_gpu(g) * f64::from(req.gpu_count);
            if req.spot {
                (base * 0.5 * 100.0).round() / 100.0
            } else {
                base
            }
        }
        None => {
            f64::from(req.cpus.unwrap_or(2)) * 0.02 + f64::from(req.memory_gb.unwrap_or(4)) * 0.005
        }
    }
}

/// USD per hour while the machine is stopped (its disks).
pub(super) fn stopped_rate(req: &ComputeRequest) -> f64 {
    f64::from(req.volume_gb.unwrap_or(0) + req.container_disk_gb.unwrap_or(0)) * STORAGE_PER_GB_HOUR
}

//! Billing history (`/v2/billing…`) as typed, time-bucketed summaries, the input of
//! spend reconciliation.
//!
//! Every family (all resources, pods, serverless, endpoints, network volumes, clusters)
//! answers `{"records": [...], "metadata": {"query", "recordCount", "totals"}}`, where a
//! record has `startTime`, `endTime`, `totalAmount`, family-specific `*Amount` fields and,
//! for per-resource families, the resource id (`podId`, `serverlessId`, …). They all
//! decode into [`BillingSummary`].
//!
//! API: <https://docs.runpod.io/api-reference-v2/billing/list-billing>

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ratelimit::Rest;
use super::translate::NAME;
use crate::error::{Error, ErrorKind, Result};

/// Length of a billing bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BucketSize {
    /// One hour.
    Hour,
    /// One day (RunPod's default).
    Day,
    /// One week.
    Week,
    /// One month.
    Month,
    /// One year.
    Year,
}

impl BucketSize {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketSize::Hour => "hour",
            BucketSize::Day => "day",
            BucketSize::Week => "week",
            BucketSize::Month => "month",
            BucketSize::Year => "year",
        }
    }
}

impl std::str::FromStr for BucketSize {
    type Err = Error;
    fn from_str(s: &str) -> Result<BucketSize> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hour" => Ok(BucketSize::Hour),
            "day" => Ok(BucketSize::Day),
            "week" => Ok(BucketSize::Week),
            "month" => Ok(BucketSize::Month),
            "year" => Ok(BucketSize::Year),
            _ => Err(Error::validation(
                "bucket_size",
                format!("{s:?} is not allowed; allowed: hour, day, week, month, year"),
            )),
        }
    }
}

/// Which window to read: an explicit range, or the last N buckets (not both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BillingQuery {
    /// Start (RunPod default: 30 days ago).
    pub start_time: Option<DateTime<Utc>>,
    /// End, exclusive (RunPod default: now).
    pub end_time: Option<DateTime<Utc>>,
    /// Bucket length (RunPod default: day).
    pub bucket_size: Option<BucketSize>,
    /// The last N buckets, ending with the current one.
    pub last_n: Option<u32>,
}

impl BillingQuery {
    /// The last `n` buckets of `size`.
    pub fn last(n: u32, size: BucketSize) -> BillingQuery {
        BillingQuery {
            last_n: Some(n),
            bucket_size: Some(size),
            ..BillingQuery::default()
        }
    }
    /// From `start` to `end` in buckets of `size`.
    pub fn range(start: DateTime<Utc>, end: DateTime<Utc>, size: BucketSize) -> BillingQuery {
        BillingQuery {
            start_time: Some(start),
            end_time: Some(end),
            bucket_size: Some(size),
            last_n: None,
        }
    }

    fn check(&self) -> Result<()> {
        if self.last_n.is_some() && (self.start_time.is_some() || self.end_time.is_some()) {
            return Err(Error::validation(
                "last_n",
                "give either last_n or start_time/end_time, not both",
            ));
        }
        if self.last_n == Some(0) {
            return Err(Error::validation("last_n", "must be at least 1"));
        }
        if let (Some(s), Some(e)) = (self.start_time, self.end_time) {
            if s >= e {
                return Err(Error::validation("start_time", "must be before end_time"));
            }
        }
        Ok(())
    }
}

/// One time bucket of spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BillingRecord {
    /// Bucket start.
    pub start_time: Option<DateTime<Utc>>,
    /// Bucket end (exclusive).
    pub end_time: Option<DateTime<Utc>>,
    /// The resource the record is for (`podId`, `serverlessId`, `networkVolumeId`,
    /// `clusterId`, `endpointId`), for per-resource families.
    pub resource_id: Option<String>,
    /// Total USD in the bucket.
    pub total: f64,
    /// Every `*Amount` component in USD, by RunPod's field name (`podGpuAmount`, …).
    pub amounts: BTreeMap<String, f64>,
}

/// A billing read: records, totals across them, and the resolved window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BillingSummary {
    /// The buckets.
    pub records: Vec<BillingRecord>,
    /// Total USD across the returned records.
    pub total: f64,
    /// Totals of every `*Amount` component.
    pub totals: BTreeMap<String, f64>,
    /// Resolved window start.
    pub start_time: Option<DateTime<Utc>>,
    /// Resolved window end.
    pub end_time: Option<DateTime<Utc>>,
    /// Bucket length RunPod used.
    pub bucket_size: Option<String>,
    /// Native JSON.
    pub raw: Value,
}

const ID_FIELDS: &[&str] = &[
    "podId",
    "serverlessId",
    "endpointId",
    "networkVolumeId",
    "clusterId",
];

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn amounts(v: &Value) -> BTreeMap<String, f64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.ends_with("Amount") && *k != "totalAmount")
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect()
        })
        .unwrap_or_default()
}

/// Decode any `/v2/billing…` response.
///
/// # Errors
/// `Provider` when `records` is missing.
pub fn summary(v: &Value) -> Result<BillingSummary> {
    let records = v["records"].as_array().ok_or_else(|| {
        Error::new(
            ErrorKind::Provider,
            "the billing response has no `records` array",
        )
        .with_provider(NAME)
    })?;
    let records = records
        .iter()
        .map(|r| BillingRecord {
            start_time: time(&r["startTime"]),
            end_time: time(&r["endTime"]),
            resource_id: ID_FIELDS
                .iter()
                .find_map(|f| r[*f].as_str())
                .map(str::to_string),
            total: r["totalAmount"].as_f64().unwrap_or(0.0),
            amounts: amounts(r),
        })
        .collect::<Vec<_>>();
    let totals_v = v
        .pointer("/metadata/totals")
        .cloned()
        .unwrap_or(Value::Null);
    let total = totals_v["totalAmount"]
        .as_f64()
        .unwrap_or_else(|| records.iter().map(|r| r.total).sum());
    Ok(BillingSummary {
        total,
        totals: amounts(&totals_v),
        start_time: v.pointer("/metadata/query/startTime").and_then(time),
        end_time: v.pointer("/metadata/query/endTime").and_then(time),
        bucket_size: v
            .pointer("/metadata/query/bucketSize")
            .and_then(Value::as_str)
            .map(str::to_string),
        records,
        raw: v.clone(),
    })
}

/// Which family of billing records to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BillingFamily {
    /// Spend across every resource (`/v2/billing`).
    All,
    /// Pods (`/v2/billing/pods`, filter `podId`).
    Pods,
    /// Serverless workers (`/v2/billing/serverless`, filter `serverlessId`).
    Serverless,
    /// Public endpoints (`/v2/billing/endpoints`).
    Endpoints,
    /// Network volumes (`/v2/billing/network-volumes`, filter `networkVolumeId`).
    NetworkVolumes,
    /// Instant clusters (`/v2/billing/clusters`, filter `clusterId`).
    Clusters,
}

impl BillingFamily {
    fn path_and_filter(self) -> (&'static str, Option<&'static str>) {
        match self {
            BillingFamily::All => ("/v2/billing", None),
            BillingFamily::Pods => ("/v2/billing/pods", Some("podId")),
            BillingFamily::Serverless => ("/v2/billing/serverless", Some("serverlessId")),
            BillingFamily::Endpoints => ("/v2/billing/endpoints", None),
            BillingFamily::NetworkVolumes => {
                ("/v2/billing/network-volumes", Some("networkVolumeId"))
            }
            BillingFamily::Clusters => ("/v2/billing/clusters", Some("clusterId")),
        }
    }
}

/// The billing surface.
#[derive(Debug, Clone)]
pub struct BillingApi {
    rest: Rest,
}

impl BillingApi {
    pub(crate) fn new(rest: Rest) -> BillingApi {
        BillingApi { rest }
    }

    /// Spend across every billable resource.
    ///
    /// # Errors
    /// `Validation` for a contradictory query; request errors.
    pub async fn summary(&self, q: &BillingQuery) -> Result<BillingSummary> {
        self.read(BillingFamily::All, q, None).await
    }

    /// Pod spend, optionally for one pod.
    ///
    /// # Errors
    /// As [`BillingApi::summary`].
    pub async fn pods(&self, q: &BillingQuery, pod_id: Option<&str>) -> Result<BillingSummary> {
        self.read(BillingFamily::Pods, q, pod_id).await
    }

    /// Read one family; `resource_id` filters families that take one.
    ///
    /// # Errors
    /// `Validation` for a contradictory query or a filter on a family without one.
    pub async fn read(
        &self,
        family: BillingFamily,
        q: &BillingQuery,
        resource_id: Option<&str>,
    ) -> Result<BillingSummary> {
        q.check()?;
        let (path, filter) = family.path_and_filter();
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut rq = self
            .rest
            .api()
            .get(path)
            .query_opt("startTime", q.start_time.map(fmt))
            .query_opt("endTime", q.end_time.map(fmt))
            .query_opt("bucketSize", q.bucket_size.map(BucketSize::as_str))
            .query_opt("lastN", q.last_n)
            .operation("billing");
        match (filter, resource_id) {
            (Some(f), Some(id)) => rq = rq.query(f, id),
            (None, Some(_)) => {
                return Err(Error::validation(
                    "resource_id",
                    format!("{family:?} billing cannot be filtered by resource"),
                ))
            }
            _ => {}
        }
        let v: Value = self.rest.json(rq).await?;
        summary(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(path: &str, name: &str) -> Value {
        let spec: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/runpod/rest-v2.openapi.json"
        ))
        .unwrap();
        spec.pointer(&format!(
            "/paths/{}/get/responses/200/content/application~1json/examples/{name}/value",
            path.replace('/', "~1")
        ))
        .unwrap()
        .clone()
    }

    #[test]
    fn spec_examples_decode() {
        let s = summary(&example("/v2/billing", "billing")).unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.total, 42.34);
        assert_eq!(s.records[0].amounts["podGpuAmount"], 18.2);
        assert_eq!(s.totals["endpointAmount"], 3.21);
        assert_eq!(s.bucket_size.as_deref(), Some("day"));
        assert_eq!(s.records[0].resource_id, None);
        let p = summary(&example("/v2/billing/pods", "podBilling")).unwrap();
        assert_eq!(p.records[0].resource_id.as_deref(), Some("7h9k2m4n6p"));
        assert_eq!(p.records[0].total, 12.34);
        let n = summary(&example(
            "/v2/billing/network-volumes",
            "networkVolumeBilling",
        ))
        .unwrap();
        assert_eq!(n.records[0].resource_id.as_deref(), Some("2q9m7x4c"));
        assert!(summary(&serde_json::json!({})).is_err());
    }

    #[test]
    fn queries_are_checked() {
        let mut q = BillingQuery::last(7, BucketSize::Day);
        assert!(q.check().is_ok());
        q.start_time = Some(Utc::now());
        assert_eq!(q.check().unwrap_err().kind(), ErrorKind::Validation);
        assert!("fortnight".parse::<BucketSize>().is_err());
    }
}

//! Orchestrator telemetry: metrics (sessions by state, spawns, terminations by reason,
//! reaped orphans, spend) and a span per session lifecycle carrying the session,
//! provider and compute ids — never the raw token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_atlas::orchestrator::store::MemorySessionStore;
use cloud_atlas::orchestrator::{
    Orchestrator, OrchestratorConfig, ReapOptions, SessionRequest, ShutdownPolicy,
};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{AuthMode, ComputeRequest, Gpu};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use tracing_subscriber::fmt::MakeWriter;

/// Last value per metric name + sorted labels.
#[derive(Debug, Default, Clone)]
struct Values(Arc<Mutex<BTreeMap<String, f64>>>);

struct Handle {
    name: String,
    values: Values,
}

impl CounterFn for Handle {
    fn increment(&self, v: u64) {
        *self
            .values
            .0
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += v as f64;
    }
    fn absolute(&self, v: u64) {
        self.values
            .0
            .lock()
            .unwrap()
            .insert(self.name.clone(), v as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, v: f64) {
        *self
            .values
            .0
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += v;
    }
    fn decrement(&self, v: f64) {
        *self
            .values
            .0
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() -= v;
    }
    fn set(&self, v: f64) {
        self.values.0.lock().unwrap().insert(self.name.clone(), v);
    }
}

#[derive(Debug)]
struct TestRecorder(Values);

impl TestRecorder {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Handle {
            name: format!("{}{{{}}}", key.name(), labels.join(",")),
            values: self.0.clone(),
        })
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_and_spans_cover_the_lifecycle_without_secrets() {
    let values = Values::default();
    metrics::set_global_recorder(TestRecorder(values.clone())).unwrap();
    let buf = Buf::default();
    let sub = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let mock = Mock::in_memory();
    let mut cfg = OrchestratorConfig::default();
    cfg.reaper.enabled = false;
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(cfg)
        .start()
        .await
        .unwrap();
    let compute = ComputeRequest::builder()
        .gpu(Gpu::L4)
        .image("app")
        .auth(AuthMode::Bearer)
        .build()
        .unwrap();
    let a = orch
        .spawn(
            SessionRequest::new("mock", "u1", compute.clone())
                .with_idle_ttl(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let b = orch
        .spawn(SessionRequest::new("mock", "u2", compute.relaunch()))
        .await
        .unwrap();
    let token = a.auth().unwrap().token.clone().unwrap();
    let v = |k: &str| values.0.lock().unwrap().get(k).copied().unwrap_or(0.0);
    assert_eq!(v("atlas_session_spawns_total{provider=mock}"), 2.0);
    assert_eq!(v("atlas_sessions{state=active}"), 2.0);
    assert_eq!(v("atlas_sessions{state=pending}"), 0.0);

    tokio::time::sleep(Duration::from_secs(6)).await; // a idles out
    assert_eq!(v("atlas_session_terminations_total{reason=idle}"), 1.0);
    assert_eq!(v("atlas_sessions{state=active}"), 1.0);
    assert_eq!(v("atlas_sessions{state=terminating}"), 0.0);

    mock.seed("atlas-session-orphan", None, Duration::from_secs(3600))
        .unwrap();
    orch.reap(&ReapOptions::default()).await.unwrap();
    assert_eq!(v("atlas_reaped_orphans_total{provider=mock}"), 1.0);
    let spend = orch.spend();
    assert!(
        v("atlas_spend_usd{}") > 0.0 && (v("atlas_spend_usd{}") - spend.total_usd).abs() < 1e-9
    );

    orch.stop_tracked(&b.session.id).await.unwrap();
    assert_eq!(v("atlas_session_terminations_total{reason=requested}"), 1.0);
    assert_eq!(v("atlas_sessions{state=active}"), 0.0);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("atlas.session"), "{logs}");
    assert!(
        logs.contains(&format!("session.id={}", a.session.id)),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("compute.id={}", a.compute.id)),
        "{logs}"
    );
    assert!(
        logs.contains("session terminated") && logs.contains("reason=idle"),
        "{logs}"
    );
    assert!(
        !logs.contains(token.expose()),
        "the raw token never reaches the logs"
    );
}

//! Checks the contract-server harness itself: a conforming request passes, a
//! non-conforming one is reported as a violation.

mod support;

use support::prism::Prism;

#[test]
fn prism_reports_violations() {
    let prism = Prism::start("runpod/rest-v2.openapi.json");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let ok = c
            .get(format!("{}/v2/pods", prism.base_url()))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    });
    prism.assert_no_violations();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let bad = c
            .post(format!("{}/v2/pods", prism.base_url()))
            .bearer_auth("k")
            .json(&serde_json::json!({"gpuCount": "many"}))
            .send()
            .await
            .unwrap();
        assert!(bad.status().is_client_error(), "{}", bad.status());
    });
    assert!(!prism.violations().is_empty(), "{}", prism.log());
}

//! `/openapi.json` is generated from the routes: every route served is in
//! it and every path in it is served.

use std::collections::BTreeSet;

use crate::controller::Controller;

/// Every route of the controller, as (method, path).
const ROUTES: [(&str, &str); 19] = [
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/v1/definitions"),
    ("post", "/v1/definitions/{name}"),
    ("get", "/v1/definitions/{name}"),
    ("delete", "/v1/definitions/{name}"),
    ("post", "/v1/flares"),
    ("get", "/v1/flares"),
    ("get", "/v1/flares/events"),
    ("get", "/v1/flares/{flare_id}"),
    ("delete", "/v1/flares/{flare_id}"),
    ("get", "/v1/flares/{flare_id}/results"),
    ("get", "/v1/flares/{flare_id}/outputs"),
    ("get", "/v1/flares/{flare_id}/outputs/{path}"),
    ("post", "/v1/hosts"),
    ("get", "/v1/hosts/{host_id}/work"),
    ("post", "/v1/hosts/{host_id}/reports"),
    ("put", "/v1/hosts/{host_id}/outputs/{flare_id}/{path}"),
    ("get", "/v1/components/{digest}"),
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let controller = Controller::start(&["--slots", "1"], &[]);
    let api = controller.api(None);
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected);
    // Each route says which credential it takes.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes.keys().collect::<Vec<_>>(), ["cluster", "host", "tenant"]);
    assert!(schemes.values().all(|s| s["scheme"] == "bearer"), "{schemes:?}");
    assert_eq!(doc["security"], serde_json::json!([{"tenant": []}]), "tenant routes by default");
    let security = |method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(security("post", "/v1/hosts"), serde_json::json!([{"cluster": []}]));
    assert_eq!(security("get", "/v1/hosts/{host_id}/work"), serde_json::json!([{"host": []}]));
    assert_eq!(security("post", "/v1/hosts/{host_id}/reports"), serde_json::json!([{"host": []}]));
    assert_eq!(security("put", "/v1/hosts/{host_id}/outputs/{flare_id}/{path}"), serde_json::json!([{"host": []}]));
    assert_eq!(security("get", "/health"), serde_json::json!([{}]), "no credential");
    // Every route is served: an unknown route answers `no_route`, these
    // answer anything else.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{name}", "x")
            .replace("{flare_id}", "x")
            .replace("{host_id}", "x")
            .replace("{digest}", "x")
            .replace("{path}", "x");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = api.request(method.clone(), &concrete).send().await.expect("answers");
        let status = response.status();
        if path.ends_with("/events") {
            // A stream that stays open: its status is the answer.
            assert_eq!(status, 200, "{method} {concrete}");
            continue;
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_ne!(body["code"], "no_route", "{method} {concrete}");
        assert_ne!(status, 405, "{method} {concrete}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_failure_kind() {
    let controller = Controller::start(&["--slots", "1"], &[]);
    let (status, doc) = controller.api(None).get("/openapi.json").await;
    assert_eq!(status, 200);
    let kind = &doc["components"]["schemas"]["WorkerError"]["properties"]["kind"];
    let listed: Vec<&str> = kind["enum"].as_array().expect("an enum").iter().filter_map(|v| v.as_str()).collect();
    let every: Vec<&str> = burst_host::FailureKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(listed, every, "{kind}");
}

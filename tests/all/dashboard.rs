//! The dashboard, in a real browser (headless Chromium driven over the
//! DevTools protocol), against a real `burst serve`: the flares list, a
//! finished flare's timeline, failure and traffic matrix equal to its
//! results, the definitions and hosts, live updates of a running flare,
//! and a second tenant's token seeing none of the first's flares. Also the
//! event stream the page follows, read directly.
//!
//! Screenshots of the three pages are saved under
//! `target/dashboard-screenshots/` (the README's come from there).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::{Value, json};

use crate::controller::{Api, Controller};

/// Where Debian's `chromium` package puts the browser (`.ci/run` installs it).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a page may take to show what is asserted.
const PAGE_WAIT: Duration = Duration::from_secs(30);

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshots directory");
    dir
}

fn browser() -> Browser {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "the dashboard tests need Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    );
    let options = LaunchOptions::default_builder()
        .path(Some(CHROMIUM.into()))
        .headless(true)
        // Containers run the tests as root, where Chromium's sandbox cannot start.
        .sandbox(false)
        .window_size(Some((1400, 900)))
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .expect("launch options");
    Browser::new(options).expect("Chromium starts")
}

/// The value of a JavaScript expression in the page, as JSON (the
/// expression is wrapped in `JSON.stringify`).
fn js(tab: &Tab, expression: &str) -> Value {
    let wrapped = format!("JSON.stringify((() => {{ {expression} }})())");
    let result = tab.evaluate(&wrapped, false).unwrap_or_else(|e| panic!("evaluating `{expression}`: {e}"));
    match result.value {
        Some(Value::String(text)) => serde_json::from_str(&text).expect("JSON from the page"),
        _ => Value::Null,
    }
}

/// Waits until `condition` (a JavaScript expression) is true in the page.
fn wait_until(tab: &Tab, what: &str, condition: &str) {
    let started = Instant::now();
    while js(tab, &format!("return Boolean({condition});")) != json!(true) {
        let shown = js(tab, "return document.querySelector('#error')?.textContent ?? null;");
        assert!(started.elapsed() < PAGE_WAIT, "the page did not show {what} (error banner: {shown})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn go(tab: &Tab, hash: &str) {
    js(tab, &format!("location.hash = {}; return null;", json!(hash)));
}

fn screenshot(tab: &Tab, name: &str) {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).expect("a screenshot");
    std::fs::write(screenshots_dir().join(name), png).expect("saving the screenshot");
}

fn log_in(tab: &Tab, token: &str) {
    wait_until(
        tab,
        "the token form",
        "document.querySelector('#login') && document.querySelector('#login').offsetParent",
    );
    tab.wait_for_element("#token").expect("the token field").click().expect("clicking the token field");
    tab.type_str(token).and_then(|tab| tab.press_key("Enter")).expect("typing the token");
    wait_until(
        tab,
        "the flares list",
        "document.body.dataset.view === 'flares' && document.body.dataset.ready === '1'",
    );
}

fn flare_rows(tab: &Tab) -> Value {
    js(
        tab,
        "return [...document.querySelectorAll('#flares tbody tr[data-flare-id]')].map(r => [r.dataset.flareId, r.dataset.status]);",
    )
}

async fn start(api: &Api, request: Value) -> String {
    let (status, accepted) = api.post("/v1/flares", &request).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["flare_id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_ran_where_and_nothing_of_another_tenant() {
    let controller = Controller::start(&["--slots", "8"], &[("BURST_TOKENS", "a:token-a,b:token-b")]);
    let api = controller.api(Some("token-a"));
    api.deploy_guest("microbench", "microbench").await;
    api.deploy_guest("fixtures", "burst_fixtures").await;
    let exchange = json!({"definition": "microbench", "burst_size": 6, "granularity": 2,
                          "input": {"primitive": "all-to-all", "size": 40_000}});
    let ok = api.flare_wait(exchange).await;
    let failing = json!({"definition": "fixtures", "burst_size": 6, "granularity": 3,
                         "input": {"scenario": "fail_guest_error", "victim": 4}});
    let failed = api.flare_wait(failing).await;
    let (ok_id, failed_id) =
        (ok["flare_id"].as_str().expect("id").to_owned(), failed["flare_id"].as_str().expect("id").to_owned());
    assert_eq!((ok["status"].as_str(), failed["status"].as_str()), (Some("succeeded"), Some("failed")));
    let base = format!("{}/", controller.api(None).url);

    let live_api = api.clone();
    let browsed = tokio::task::spawn_blocking(move || {
        let browser = browser();
        let tab = browser.new_tab().expect("a tab");
        tab.navigate_to(&base).and_then(|tab| tab.wait_until_navigated()).expect("the page loads");
        log_in(&tab, "token-a");
        // Newest first, with their status.
        assert_eq!(flare_rows(&tab), json!([[failed_id, "failed"], [ok_id, "succeeded"]]));
        screenshot(&tab, "flares.png");

        // The failed flare: the failure marked at worker 4, one timeline row per worker.
        go(&tab, &format!("#/flares/{failed_id}"));
        wait_until(
            &tab,
            "the failed flare",
            "document.body.dataset.view === 'flare' && document.body.dataset.ready === '1' && document.querySelector('#failure')",
        );
        let failure = js(
            &tab,
            "const f = document.querySelector('#failure'); return [f.dataset.workerId, f.dataset.kind, f.textContent];",
        );
        assert_eq!((&failure[0], &failure[1]), (&json!("4"), &json!("guest_error")), "{failure}");
        let timeline = js(
            &tab,
            "const t = document.querySelector('#timeline').dataset; return [t.workers, t.packs, t.failedWorker];",
        );
        assert_eq!(timeline, json!(["6", "2", "4"]));
        assert_eq!(js(&tab, "return document.querySelector('#flare-status').textContent.trim();"), "failed");

        // The succeeded flare: the matrix and totals are its results' numbers.
        go(&tab, &format!("#/flares/{ok_id}"));
        let ready = "document.body.dataset.view === 'flare' && document.body.dataset.ready === '1' \
                     && document.querySelector('#flare-status')?.textContent.trim() === 'succeeded' \
                     && document.querySelector('#timeline')?.dataset.workers === '6'";
        wait_until(&tab, "the succeeded flare", ready);
        let cells = js(
            &tab,
            "return [...document.querySelectorAll('#traffic td[data-from]')].map(c => [Number(c.dataset.from), Number(c.dataset.to), Number(c.dataset.bytes)]);",
        );
        let mut expected = Vec::new();
        for pack in ok["traffic"].as_array().expect("traffic") {
            let to = pack["pack_id"].as_u64().expect("pack id");
            for (from, bytes) in pack["from"].as_array().expect("from").iter().enumerate() {
                expected.push(json!([from, to, bytes]));
            }
        }
        let mut shown = cells.as_array().expect("cells").clone();
        shown.sort_by_key(|c| (c[1].as_u64(), c[0].as_u64()));
        assert_eq!(shown, expected, "the matrix is the results' traffic");
        assert_eq!(expected.len(), 9, "three packs");
        let totals = js(
            &tab,
            "const t = document.querySelector('#totals').dataset; return [Number(t.local), Number(t.remote)];",
        );
        assert_eq!(totals, json!([ok["bytes"]["local"], ok["bytes"]["remote"]]));
        let calls = js(
            &tab,
            "return Object.fromEntries([...document.querySelectorAll('#calls tr[data-primitive]')].map(r => [r.dataset.primitive, Number(r.cells[1].textContent.replace(/[^0-9]/g, ''))]));",
        );
        assert_eq!(calls, ok["calls"], "calls per primitive");
        assert_eq!(ok["calls"], json!({"all-to-all": 6, "barrier": 6}));
        let placement = js(
            &tab,
            "return [...document.querySelectorAll('#placement tr[data-pack-id]')].map(r => r.dataset.packId);",
        );
        assert_eq!(placement, json!(["0", "1", "2"]));
        js(
            &tab,
            "const s = document.querySelector('#worker-select'); s.value = '3'; s.dispatchEvent(new Event('change')); return null;",
        );
        wait_until(
            &tab,
            "worker 3's output",
            "document.querySelector('#worker-output')?.textContent.includes('\"worker_id\": 3')",
        );
        screenshot(&tab, "flare.png");

        go(&tab, "#/definitions");
        wait_until(
            &tab,
            "the definitions",
            "document.body.dataset.view === 'definitions' && document.body.dataset.ready === '1'",
        );
        let names = js(
            &tab,
            "return [...document.querySelectorAll('#definitions tr[data-name]')].map(r => r.dataset.name).sort();",
        );
        assert_eq!(names, json!(["fixtures", "microbench"]));
        let hosts =
            js(&tab, "return [...document.querySelectorAll('#hosts tr[data-host-id]')].map(r => r.dataset.hostId);");
        assert_eq!(hosts, json!(["local"]));
        screenshot(&tab, "definitions.png");

        // A flare started now appears on the open list, running, then failed
        // at its deadline, without a reload.
        go(&tab, "#/");
        wait_until(
            &tab,
            "the flares list",
            "document.body.dataset.view === 'flares' && document.body.dataset.ready === '1'",
        );
        let waiting = json!({"definition": "fixtures", "burst_size": 2, "input": {"scenario": "fail_wait_forever"}, "deadline_ms": 3000});
        let live_id = tokio::runtime::Handle::current().block_on(start(&live_api, waiting));
        let row = format!("document.querySelector('#flares tr[data-flare-id=\"{live_id}\"]')");
        wait_until(&tab, "the new flare", &format!("{row} && {row}.dataset.status === 'running'"));
        wait_until(&tab, "the new flare failed", &format!("{row}?.dataset.status === 'failed'"));

        // Another tenant sees none of it.
        tab.wait_for_element("#logout").expect("the logout button").click().expect("clicking logout");
        log_in(&tab, "token-b");
        assert_eq!(flare_rows(&tab), json!([]));
        go(&tab, &format!("#/flares/{ok_id}"));
        wait_until(&tab, "a not-found error", "document.querySelector('#error')?.textContent.includes('not found')");
        assert_eq!(js(&tab, "return document.querySelectorAll('#traffic td[data-from]').length;"), 0);
    });
    browsed.await.expect("the browser session passed");
}

/// Reads server-sent events from `response` until `done` says so.
async fn read_events(
    mut response: reqwest::Response,
    mut done: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(PAGE_WAIT, response.chunk()).await.expect("an event in time");
        let chunk = chunk.expect("the stream reads").expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if name.is_empty() {
                continue; // a keep-alive
            }
            let data: Value = serde_json::from_str(&data).expect("JSON data");
            let finished = done(&name, &data);
            events.push((name, data));
            if finished {
                return events;
            }
        }
    }
}

#[tokio::test]
async fn the_event_stream_follows_the_callers_flares_only() {
    let controller = Controller::start(&["--slots", "8"], &[("BURST_TOKENS", "a:token-a,b:token-b")]);
    let (a, b) = (controller.api(Some("token-a")), controller.api(Some("token-b")));
    a.deploy_guest("hello", "hello").await;
    b.deploy_guest("hello", "hello").await;
    let unauthorized =
        controller.api(None).send(controller.api(None).request(reqwest::Method::GET, "/v1/flares/events")).await;
    assert_eq!(unauthorized.0, 401);
    let response = a.request(reqwest::Method::GET, "/v1/flares/events").send().await.expect("the stream opens");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let theirs = start(&b, json!({"definition": "hello", "burst_size": 4})).await;
    b.wait_final(&theirs).await;
    let ours = start(&a, json!({"definition": "hello", "burst_size": 4, "granularity": 2})).await;
    let events = read_events(response, |name, doc| {
        name == "flare" && doc["flare_id"] == ours.as_str() && doc["status"] == "succeeded"
    })
    .await;
    assert!(
        events.iter().all(|(name, doc)| name == "flare" && doc["flare_id"] == ours.as_str()),
        "only a's flare: {events:?}"
    );
    let statuses: Vec<&str> = events.iter().filter_map(|(_, doc)| doc["status"].as_str()).collect();
    assert_eq!(statuses.last(), Some(&"succeeded"));
    assert!(statuses.iter().all(|s| ["queued", "running", "succeeded"].contains(s)), "{statuses:?}");
    let last = &events.last().expect("an event").1;
    assert_eq!(last["workers_finished"], 4, "the final document: {last}");
}

#[tokio::test]
async fn the_page_is_served_with_a_policy_that_keeps_it_to_this_server() {
    let controller = Controller::start(&["--slots", "1"], &[("BURST_TOKENS", "a:token-a")]);
    let http = reqwest::Client::new();
    let base = controller.api(None).url;
    for (path, kind) in
        [("/", "text/html"), ("/dashboard/app.js", "text/javascript"), ("/dashboard/style.css", "text/css")]
    {
        // No token: the files hold no data.
        let response = http.get(format!("{base}{path}")).send().await.expect("answers");
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().is_ok_and(|t| t.starts_with(kind)), "{path}: {headers:?}");
        let policy = headers["content-security-policy"].to_str().expect("ASCII");
        assert!(policy.starts_with("default-src 'self';") && !policy.contains("unsafe"), "{path}: {policy}");
        assert!(!response.bytes().await.expect("a body").is_empty(), "{path}");
    }
    let (status, body) = controller.api(None).get("/dashboard/../Cargo.toml").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = controller.api(None).get("/dashboard/secret.js").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_route")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_ends_when_the_controller_stops() {
    // A stream would otherwise hold the shutdown for its whole grace period.
    let mut controller = Controller::start(&["--slots", "1"], &[]);
    let mut response =
        controller.api(None).request(reqwest::Method::GET, "/v1/flares/events").send().await.expect("the stream opens");
    assert_eq!(response.status(), 200);
    let status = std::process::Command::new("kill").args(["-TERM", &controller.pid().to_string()]).status();
    assert!(status.expect("kill runs").success());
    let ended =
        tokio::time::timeout(Duration::from_secs(3), async { while let Ok(Some(_)) = response.chunk().await {} }).await;
    assert!(ended.is_ok(), "the stream was still open 3 s after SIGTERM");
    let exited = tokio::task::block_in_place(|| controller.exited_within(Duration::from_secs(3)));
    assert!(exited, "the controller was still running 3 s after SIGTERM");
}

#[tokio::test]
async fn event_streams_are_bounded_and_a_closed_one_frees_its_place() {
    // Each open stream holds one of the requests served at once.
    let controller = Controller::start(&["--slots", "1"], &[]);
    let api = controller.api(None);
    let open = || api.request(reqwest::Method::GET, "/v1/flares/events").send();
    let mut streams = Vec::new();
    for _ in 0..32 {
        let response = open().await.expect("the stream opens");
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let refused = open().await.expect("answers");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["code"], "too_many_streams", "{body}");
    // A closed stream ends its task at its next event or keep-alive; a
    // flare's changes are events.
    drop(streams.pop());
    api.deploy_guest("hello", "hello").await;
    api.flare_wait(json!({"definition": "hello", "burst_size": 1})).await;
    let started = Instant::now();
    loop {
        let response = open().await.expect("answers");
        if response.status() == 200 {
            break;
        }
        assert!(started.elapsed() < PAGE_WAIT, "no place freed after a stream closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

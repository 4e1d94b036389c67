//! The operator console in a real browser: the server binary on SQLite, headless Chromium
//! driven through chromedriver (WebDriver, `fantoccini`). What an operator does: sign in (a
//! wrong token is refused), find a delivered pull request, open it (its hostile title shows as
//! text), see its task complete, retry a failed task, then (everything paused) retry it again
//! and cancel it before it runs; bulk retry the cancelled tasks (preview, then the operation's
//! self-refreshing progress).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test fails under `CI` and is skipped with a message otherwise. With
//! `CONSOLE_SCREENSHOTS=<dir>` it saves a screenshot of each screen there (README's images).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const XSS_TITLE: &str = "<img src=x onerror=alert(1)>";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Driver {
    /// Starts chromedriver, or says why not (`None`: skip, outside CI only).
    fn start() -> Option<Self> {
        let Some(binary) = chromedriver() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver not found (CI is set: apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: chromedriver not found (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// CPU time (user + system, ms) used so far by every process under chromedriver (the
    /// browser and its renderers): what a navigation costs on an idle core, whatever else
    /// the machine runs. 10 ms resolution (clock ticks).
    fn browser_cpu_ms(&self) -> u64 {
        let mut family = vec![self.child.id()];
        let mut total_ticks = 0;
        // Parents come before their children in pid order often but not always: repeat until
        // no new descendant is found.
        let mut grew = true;
        let mut stats = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
                stats.push(stat);
            }
        }
        let parsed: Vec<(u32, u32, u64)> = stats
            .iter()
            .filter_map(|stat| {
                let (head, rest) = stat.rsplit_once(')')?;
                let pid = head.split_whitespace().next()?.parse().ok()?;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // After the command: state, ppid, ..., utime (12th), stime (13th).
                let ppid = fields.get(1)?.parse().ok()?;
                let ticks =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some((pid, ppid, ticks))
            })
            .collect();
        while grew {
            grew = false;
            for (pid, ppid, _) in &parsed {
                if family.contains(ppid) && !family.contains(pid) {
                    family.push(*pid);
                    grew = true;
                }
            }
        }
        for (pid, _, ticks) in &parsed {
            if family.contains(pid) && *pid != self.child.id() {
                total_ticks += ticks;
            }
        }
        total_ticks * 10
    }

    /// A headless Chromium session (without the sandbox when running as root, as in CI).
    async fn browser(&self) -> Client {
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1360,900",
        ];
        if running_as_root() {
            args.push("--no-sandbox");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no browser session: {e}"))
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Saves a screenshot of the current screen when `CONSOLE_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn text(browser: &Client, css: &str) -> String {
    wait_text(browser, css, |_| true).await
}

/// The text of `css` once it satisfies `ready` (a click's page load may still be under way:
/// the element is looked up again until then), at most 10 s.
async fn wait_text(browser: &Client, css: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if ready(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never became ready; last text: {last}");
}

/// Clicks the element `css` names.
async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks the page's action button and accepts its confirmation dialog.
async fn confirm_action(browser: &Client) {
    click(browser, "form.action button[type=submit]").await;
    browser.accept_alert().await.unwrap();
}

async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/ui")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/login")
    );
    let field = browser.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    click(browser, "form.login button[type=submit]").await;
}

/// A pull request delivery whose title is hostile HTML, and one (#999) whose analysis fails.
fn deliveries() -> (Vec<u8>, Vec<u8>) {
    let mut pr: Value =
        serde_json::from_slice(&corpus("pull_request/opened.payload.json")).unwrap();
    pr["pull_request"]["title"] = json!(XSS_TITLE);
    let hostile = serde_json::to_vec(&pr).unwrap();
    pr["number"] = json!(999);
    pr["pull_request"]["number"] = json!(999);
    pr["pull_request"]["title"] = json!("A pull request whose files cannot be read");
    pr["pull_request"]["head"]["sha"] = json!("9999999999999999999999999999999999999999");
    (hostile, serde_json::to_vec(&pr).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_follows_a_pull_request_and_retries_a_failed_task() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls/999/files$"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"message": "no"})))
        .with_priority(1)
        .mount(&github)
        .await;
    let codegen = codegen_mock().await;
    // The agent budget at its default (the test starts few runs), so the overview shows it.
    let server = Server::start(
        &db,
        &github,
        &codegen,
        "all",
        &[
            ("RETRY_MAX_RETRIES", "0"),
            ("AGENT_BUDGET_PER_MINUTE", "10"),
        ],
    )
    .await;
    let base = server.base.clone();

    let (hostile, failing) = deliveries();
    let (status, receipt) = server.deliver("pull_request", &hostile).await;
    assert_eq!(status, 200, "{receipt}");
    let event_id = receipt["result"]["event_id"].as_i64().unwrap();
    let analysis_id = receipt["result"]["task_id"].as_str().unwrap().to_owned();
    let (status, receipt) = server.deliver("pull_request", &failing).await;
    assert_eq!(status, 200, "{receipt}");
    let failed_id = receipt["result"]["task_id"].as_str().unwrap().to_owned();
    server
        .wait_for("the analyses settled", Duration::from_secs(60), |tasks| {
            let all = tasks.as_array()?;
            let status = |id: &str| {
                all.iter()
                    .find(|t| t["task_id"] == id)
                    .map(|t| t["status"].clone())
            };
            (status(&analysis_id)? == "completed" && status(&failed_id)? == "failed").then_some(())
        })
        .await;

    // The CSP and framing headers, as the browser receives them.
    let resp = reqwest::get(format!("{base}/ui/login")).await.unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");

    let browser = driver.browser().await;
    // A wrong token is refused.
    sign_in(&browser, &base, "not-the-admin-token").await;
    assert!(
        text(&browser, "main")
            .await
            .contains("That is not the admin token.")
    );
    screenshot(&browser, "login").await;
    // The right one opens the overview.
    browser.goto(&format!("{base}/ui/login")).await.unwrap();
    sign_in(&browser, &base, ADMIN_TOKEN).await;
    wait_text(&browser, "h1", |t| t == "Overview").await;
    // The agent budget tile: the default global rate, none used yet in this test.
    let budget = text(&browser, "section[aria-labelledby='h-agent-budget']").await;
    assert!(
        budget.contains("Codegen runs per minute") && budget.contains("10 (all repositories)"),
        "{budget}"
    );
    screenshot(&browser, "overview").await;

    // The delivered pull request is in the list; open it.
    browser
        .goto(&format!("{base}/ui/deliveries"))
        .await
        .unwrap();
    let list = text(&browser, "table.list").await;
    assert!(
        list.contains("pull_request") && list.contains("Codertocat/Hello-World"),
        "{list}"
    );
    screenshot(&browser, "deliveries").await;
    click(
        &browser,
        format!("a[href='/ui/deliveries/{event_id}']").as_str(),
    )
    .await;
    assert!(
        text(&browser, "h1")
            .await
            .starts_with(&format!("Delivery {event_id}"))
    );
    // The hostile title is text, not an element.
    assert!(
        browser
            .find_all(Locator::Css("main img"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(text(&browser, "main").await.contains(XSS_TITLE));
    screenshot(&browser, "delivery").await;

    // Its task completed.
    click(
        &browser,
        format!("a[href='/ui/tasks/{analysis_id}']").as_str(),
    )
    .await;
    wait_text(&browser, "h1", |t| t.contains("completed")).await;
    assert!(text(&browser, "main").await.contains(XSS_TITLE));
    screenshot(&browser, "task").await;

    // Retry the failed task: confirm, then the result shows.
    browser
        .goto(&format!("{base}/ui/tasks?status=failed"))
        .await
        .unwrap();
    screenshot(&browser, "tasks").await;
    click(
        &browser,
        format!("a[href='/ui/tasks/{failed_id}']").as_str(),
    )
    .await;
    confirm_action(&browser).await;
    wait_text(&browser, "p.flash", |t| t.contains("is pending again")).await;
    screenshot(&browser, "task-retried").await;
    // The retry reached the store: the task ran a second time (and failed again: its files
    // still cannot be read).
    let started = Instant::now();
    loop {
        let detail = server.get(&format!("/api/v1/tasks/{failed_id}")).await;
        let runs = detail["executions"].as_array().map_or(0, Vec::len);
        if runs >= 2 && detail["status"] == "failed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not run again: {detail:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Pause everything, retry it again: it waits, shown paused; cancel it before it can run.
    let (status, pause) = server.post_admin("/api/v1/admin/pause", &json!({})).await;
    assert_eq!(status, 200, "{pause}");
    browser
        .goto(&format!("{base}/ui/tasks/{failed_id}"))
        .await
        .unwrap();
    confirm_action(&browser).await;
    wait_text(&browser, "p.flash", |t| t.contains("is pending again")).await;
    assert!(
        text(&browser, "main")
            .await
            .contains("a pause holds this task")
    );
    confirm_action(&browser).await;
    wait_text(&browser, "p.flash", |t| t.contains("is cancelled")).await;
    wait_text(&browser, "h1", |t| t.contains("cancelled")).await;
    screenshot(&browser, "task-cancelled").await;
    let detail = server.get(&format!("/api/v1/tasks/{failed_id}")).await;
    assert_eq!(detail["status"], "cancelled", "{detail:#}");
    assert_eq!(detail["executions"].as_array().map_or(0, Vec::len), 2);

    // Bulk retry of the cancelled tasks: a preview (dry run) first, then the confirmed start;
    // the operation's page refreshes itself until the worker has done it.
    browser
        .goto(&format!("{base}/ui/tasks?status=cancelled"))
        .await
        .unwrap();
    click(&browser, "p.bulk a").await;
    wait_text(&browser, "p.preview", |t| {
        t.contains("1 failed or cancelled tasks match")
    })
    .await;
    assert!(text(&browser, "ul.sample").await.contains(&failed_id));
    screenshot(&browser, "bulk-preview").await;
    confirm_action(&browser).await;
    wait_text(&browser, "p.flash", |t| t.contains("1 tasks to retry")).await;
    wait_text(&browser, "dd.done", |t| t == "1").await;
    wait_text(&browser, "h1", |t| t.contains("completed")).await;
    screenshot(&browser, "operation").await;
    let detail = server.get(&format!("/api/v1/tasks/{failed_id}")).await;
    assert_eq!(
        detail["status"], "pending",
        "retried, held by the pause: {detail:#}"
    );

    // The lists of screen 7: operations, pauses (with its Resume), recovery runs.
    browser
        .goto(&format!("{base}/ui/operations"))
        .await
        .unwrap();
    assert!(text(&browser, "table.list").await.contains("retry_tasks"));
    screenshot(&browser, "operations").await;
    browser.goto(&format!("{base}/ui/pauses")).await.unwrap();
    assert!(
        text(&browser, "table.list")
            .await
            .contains("every repository")
    );
    screenshot(&browser, "pauses").await;
    browser.goto(&format!("{base}/ui/recovery")).await.unwrap();
    wait_text(&browser, "h1", |t| t.contains("Recovery")).await;
    screenshot(&browser, "recovery").await;

    browser.close().await.unwrap();
}

/// Measures how fast a page of 1,000 deliveries renders in the browser (docs/benchmarks.md);
/// a measurement, not a timed test: `cargo test -p orchestrator-server --test it
/// console_renders -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn console_renders_1000_rows() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let db = TestDb::sqlite();
    let github = github_mock(Duration::ZERO).await;
    let codegen = codegen_mock().await;
    let server = Server::start(&db, &github, &codegen, "all", &[]).await;
    let ping = corpus("ping/payload.json");
    for _ in 0..1000 {
        let (status, _) = server.deliver("ping", &ping).await;
        assert_eq!(status, 200);
    }
    let browser = driver.browser().await;
    sign_in(&browser, &server.base, ADMIN_TOKEN).await;
    let url = format!("{}/ui/deliveries?limit=1000", server.base);
    let mut runs = Vec::new();
    for _ in 0..7 {
        let cpu_before = driver.browser_cpu_ms();
        browser.goto(&url).await.unwrap();
        let rows = browser
            .find_all(Locator::Css("table.list tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        // console.js marks "console:rendered" once the first frame after parsing is drawn:
        // the page is on screen, laid out, and the browser is free again.
        let mut timing = Value::Null;
        for _ in 0..100 {
            timing = browser
                .execute(
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     const r = performance.getEntriesByName('console:rendered')[0]; \
                     if (!r) { return null; } \
                     return [n.responseStart - n.requestStart, n.responseEnd - n.requestStart, \
                     n.domContentLoadedEventEnd - n.requestStart, r.startTime - n.requestStart, \
                     n.transferSize];",
                    vec![],
                )
                .await
                .unwrap();
            if !timing.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = driver.browser_cpu_ms() - cpu_before;
        runs.push((timing, cpu));
    }
    for (run, cpu) in &runs {
        eprintln!(
            "1000 rows: first byte, last byte, DOMContentLoaded, rendered (ms), bytes: {run}; \
             browser CPU time of the navigation: {cpu} ms"
        );
    }
    let mut rendered: Vec<f64> = runs.iter().filter_map(|(t, _)| t[3].as_f64()).collect();
    rendered.sort_by(f64::total_cmp);
    eprintln!(
        "1000 rows rendered: median {:.0} ms (min {:.0}, max {:.0}) from the request",
        rendered[rendered.len() / 2],
        rendered[0],
        rendered[rendered.len() - 1]
    );
    browser.close().await.unwrap();
}

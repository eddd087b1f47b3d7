//! The web console, as a person uses it, in Debian's Chromium driven over
//! WebDriver (chromedriver): create a connection by typing into the form
//! rendered from the component's schema, see a validation error appear and
//! go away, save, reopen (the secret field empty), test the connection (OK,
//! then AUTH_FAILED against a partner that refuses the password), send a
//! file and see it acknowledged, see a received document in the source
//! list and download it, look a message up. And the API's answers to bad
//! requests: malformed JSON, a name that exists, an oversized upload,
//! another origin, no token, another host name.
//!
//! `UPDATE_CONSOLE_SCREENSHOTS=1` writes the browser's screenshots into
//! `docs/console/` (always into `target/console-screenshots/`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{browser, choose_file, click, start_browser, wait_until};
use common::{DOCUMENT, Running, World, free_port, register_secret};
use fantoccini::{Client, Locator};
use serde_json::json;

const PASSWORD: &str = "console-test-pw-7f3a";
const WRONG_PASSWORD: &str = "console-test-wrong-2b9c";

/// Both stations and ACME's console; GLOBEX requires HTTP Basic credentials.
struct Stations {
    world: World,
    master_key: String,
    console_port: u16,
    _globex: Running,
    _acme: Running,
}

impl Stations {
    fn start(name: &str) -> Stations {
        let world = World::new(name, json!({}));
        let master_key = new_master_key();
        register_secret(PASSWORD);
        register_secret(WRONG_PASSWORD);
        // GLOBEX takes messages only with ACME's password, and sends back to ACME's endpoint.
        let acme_url = format!("http://127.0.0.1:{}/as2", world.acme_port);
        world.edit_config("globex.json", |config| {
            config["station"]["basic_auth"] =
                json!({ "username": "acme", "password": { "secret": "acme-in" } });
            config["partner"]["url"] = json!(acme_url);
        });
        let mut set = with_key(
            world.command("globex", &["secrets", "set", "acme-in"]),
            &master_key,
        );
        let mut child = set.stdin(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());

        let globex_listen = format!("127.0.0.1:{}", world.globex_port);
        let mut globex = Running::spawn(with_key(
            world.command(
                "globex",
                &["serve", "globex.json", "--listen", &globex_listen],
            ),
            &master_key,
        ));
        globex.wait_for("receiving for", Duration::from_secs(60));
        let console_port = free_port();
        let (acme_listen, console_listen) = (
            format!("127.0.0.1:{}", world.acme_port),
            format!("127.0.0.1:{console_port}"),
        );
        let mut acme = Running::spawn(with_key(
            world.command(
                "acme",
                &[
                    "serve",
                    "--listen",
                    &acme_listen,
                    "--console",
                    &console_listen,
                ],
            ),
            &master_key,
        ));
        acme.wait_for("console at http://", Duration::from_secs(60));
        Stations {
            world,
            master_key,
            console_port,
            _globex: globex,
            _acme: acme,
        }
    }

    fn console_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.console_port)
    }
}

/// A fresh master key, registered as a secret for the scan. Made without
/// the test log: printing the key is the command's job.
fn new_master_key() -> String {
    let output = common::harness()
        .args(["secrets", "new-master-key"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let master_key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    register_secret(&master_key);
    master_key
}

fn with_key(mut command: Command, master_key: &str) -> Command {
    command.env("AS2_MASTER_KEY", master_key);
    command
}

/// Waits until an element matches `css`.
async fn wait_for_element(client: &Client, css: &str, what: &str) {
    wait_until(client, &format!("document.querySelector({css:?})"), what).await;
}

/// Asserts that the text of the element `css` has every one of `words`.
async fn assert_shows(client: &Client, css: &str, words: &[&str]) {
    let text = text_of(client, css).await;
    for word in words {
        assert!(text.contains(word), "{css} has no {word:?}: {text}");
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn field(client: &Client, pointer: &str) -> fantoccini::elements::Element {
    client
        .find(Locator::Css(&format!(
            "[data-pointer=\"{pointer}\"] input:not([type=file]), [data-pointer=\"{pointer}\"] textarea, [data-pointer=\"{pointer}\"] select"
        )))
        .await
        .unwrap_or_else(|e| panic!("no field {pointer}: {e}"))
}

async fn type_into(client: &Client, pointer: &str, text: &str) {
    let input = field(client, pointer).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn tab(client: &Client, label: &str) {
    click(
        client,
        Locator::Css(&format!(".category-tab[data-category=\"{label}\"]")),
    )
    .await;
}

async fn view(client: &Client, name: &str) {
    click(
        client,
        Locator::Css(&format!(".view-tab[data-view=\"{name}\"]")),
    )
    .await;
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOTS").is_some() {
        let docs = root.join("docs/console");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

async fn save_and_wait(client: &Client) {
    click(client, Locator::Id("save")).await;
    wait_until(
        client,
        "document.querySelector('#save-state').textContent === 'saved'",
        "the connection saved",
    )
    .await;
}

async fn test_verdict(client: &Client) -> String {
    client
        .execute(
            "document.querySelector('#test-result').replaceChildren();",
            vec![],
        )
        .await
        .unwrap();
    click(client, Locator::Id("test")).await;
    wait_until(
        client,
        "document.querySelector('#verdict')",
        "a test-connection verdict",
    )
    .await;
    text_of(client, "#test-result").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_configures_tests_and_uses_a_connection_in_the_browser() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let stations = Stations::start("console-ui");
    let world = &stations.world;
    let (_driver, client) = start_browser(&chromium, &chromedriver).await;
    client.goto(&stations.console_url()).await.unwrap();
    wait_until(
        &client,
        "document.body.dataset.ready === 'true'",
        "the console loaded",
    )
    .await;

    // A new connection, typed in. A wrong AS2 identifier is refused as it is typed.
    click(&client, Locator::Id("new-connection")).await;
    type_into(&client, "/name", "ACME to GLOBEX").await;
    tab(&client, "Your AS2 station").await;
    type_into(&client, "/station/as2_id", "ACMÉ").await;
    let as2_id_problem =
        "!document.querySelector('[data-pointer=\"/station/as2_id\"] .problem').hidden";
    wait_until(&client, as2_id_problem, "a problem at the AS2 identifier").await;
    let problem = text_of(&client, "[data-pointer=\"/station/as2_id\"] .problem").await;
    assert!(problem.contains("INVALID_CONFIG"), "{problem}");
    screenshot(&client, "validation").await;
    type_into(&client, "/station/as2_id", &world.acme_id).await;
    wait_until(&client, &format!("!({as2_id_problem})"), "the problem gone").await;
    type_into(
        &client,
        "/station/url",
        &format!("http://127.0.0.1:{}/as2", world.acme_port),
    )
    .await;
    type_into(&client, "/station/private_key", "acme").await;

    tab(&client, "Partner AS2 station").await;
    type_into(
        &client,
        "/partner/url",
        &format!("http://127.0.0.1:{}/as2", world.globex_port),
    )
    .await;
    type_into(&client, "/partner/as2_id", &world.globex_id).await;
    // The partner's certificate from a file, as a person uploads it.
    let globex_cert = world.dir.join("globex.cert.pem");
    let acme_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.dir.join("acme.json")).unwrap())
            .unwrap();
    let certificate = acme_json["partner"]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&globex_cert, &certificate).unwrap();
    choose_file(
        &client,
        Locator::Css("[data-pointer=\"/partner/certificate\"] input[type=file]"),
        globex_cert.to_str().unwrap(),
    )
    .await;
    wait_until(
        &client,
        "document.querySelector('[data-pointer=\"/partner/certificate\"] textarea').value.includes('BEGIN CERTIFICATE')",
        "the certificate read from its file",
    )
    .await;
    // The async MDN URL shows only with "Partner requires asynchronous MDNs".
    assert!(!shown(&client, "/partner/async_mdn_url").await);
    toggle(&client, "/partner/requires_async_mdn").await;
    assert!(shown(&client, "/partner/async_mdn_url").await);
    toggle(&client, "/partner/requires_async_mdn").await;
    assert!(!shown(&client, "/partner/async_mdn_url").await);

    tab(&client, "Authentication").await;
    select(&client, "/auth/type", "basic").await;
    type_into(&client, "/auth/username", "acme").await;
    type_into(&client, "/auth/password/value", PASSWORD).await;
    screenshot(&client, "form").await;
    save_and_wait(&client).await;

    // Saved: the password is in the secret store, never in the page.
    let saved =
        std::fs::read_to_string(world.dir.join("acme/connections/acme-to-globex.json")).unwrap();
    assert!(!saved.contains(PASSWORD), "{saved}");
    assert!(!client.source().await.unwrap().contains(PASSWORD));
    // Reopened: the secret field is empty and says it is stored.
    client.refresh().await.unwrap();
    wait_until(&client, "document.body.dataset.ready === 'true' && document.querySelector('[data-pointer=\"/auth/password/value\"] input')", "the connection reopened").await;
    tab(&client, "Authentication").await;
    let password = field(&client, "/auth/password/value").await;
    assert_eq!(password.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        password.attr("placeholder").await.unwrap().as_deref(),
        Some("stored — enter again to change")
    );
    assert!(!client.source().await.unwrap().contains(PASSWORD));

    // Test connection: OK with the stored password, AUTH_FAILED with a wrong one.
    let verdict = test_verdict(&client).await;
    assert!(verdict.starts_with("OK"), "{verdict}");
    screenshot(&client, "test-ok").await;
    type_into(&client, "/auth/password/value", WRONG_PASSWORD).await;
    save_and_wait(&client).await;
    let verdict = test_verdict(&client).await;
    assert!(verdict.starts_with("AUTH_FAILED"), "{verdict}");
    assert!(verdict.contains("401"), "the fail status shows: {verdict}");
    screenshot(&client, "test-auth-failed").await;
    tab(&client, "Authentication").await;
    type_into(&client, "/auth/password/value", PASSWORD).await;
    save_and_wait(&client).await;

    // Destination: a file sent, with its progress, and the MDN's verdict.
    view(&client, "destination").await;
    let document = world.dir.join("po-4711.x12");
    choose_file(
        &client,
        Locator::Id("send-files"),
        document.to_str().unwrap(),
    )
    .await;
    click(&client, Locator::Id("send")).await;
    wait_for_element(
        &client,
        "#send-progress li .done, #send-progress li .failed",
        "the send's verdict",
    )
    .await;
    assert_shows(
        &client,
        "#send-progress li",
        &["acknowledged", "MDN processed", "MIC matched"],
    )
    .await;
    screenshot(&client, "destination").await;
    let delivered = std::fs::read_dir(world.dir.join("globex/inbox").join(&world.acme_id))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(delivered, vec![DOCUMENT.to_vec()]);

    // Source: GLOBEX sends to ACME; the document shows up without a reload.
    view(&client, "source").await;
    let invoice = world.dir.join("invoice-810.x12");
    std::fs::write(&invoice, b"ISA*00*invoice~\nST*810*0001~\nSE*2*0001~\n").unwrap();
    let output = common::output_of(&mut with_key(
        world.command(
            "globex",
            &["send", "globex.json", invoice.to_str().unwrap()],
        ),
        &stations.master_key,
    ));
    assert!(output.status.success(), "{}", common::text(&output));
    wait_for_element(
        &client,
        "#received tr[data-message-id]",
        "the received document listed",
    )
    .await;
    let row = text_of(&client, "#received tr[data-message-id]").await;
    assert!(
        row.contains("invoice-810.x12")
            && row.contains("processed")
            && row.contains(&world.globex_id),
        "{row}"
    );
    let downloaded = client
        .execute(
            "const a = document.querySelector('#received a[download]'); return fetch(a.href).then(r => r.text());",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        downloaded,
        json!("ISA*00*invoice~\nST*810*0001~\nSE*2*0001~\n")
    );
    screenshot(&client, "source").await;

    // Lookup: the sent message's state, attempts and MDN.
    view(&client, "destination").await;
    wait_for_element(&client, "#sent tr[data-message-id] a", "the sent list").await;
    click(&client, Locator::Css("#sent tr[data-message-id] a")).await;
    wait_for_element(&client, "#status", "the message's status").await;
    assert_shows(&client, "#status", &["acknowledged", "matches", "verified"]).await;
    screenshot(&client, "lookup").await;

    // A second connection under a name that exists: named at the field
    // while typing, and refused on Save with a typed error; nothing written.
    click(&client, Locator::Id("new-connection")).await;
    type_into(&client, "/name", "ACME to GLOBEX").await;
    wait_until(
        &client,
        "document.querySelector('[data-pointer=\"/name\"] [data-code=NAME_TAKEN]')",
        "NAME_TAKEN at the name",
    )
    .await;
    click(&client, Locator::Id("save")).await;
    wait_until(
        &client,
        "!document.querySelector('#notice').hidden && document.querySelector('#notice').textContent.startsWith('NAME_TAKEN')",
        "the refusal shown",
    )
    .await;
    let saved_now = std::fs::read_dir(world.dir.join("acme/connections"))
        .unwrap()
        .count();
    assert_eq!(saved_now, 1);

    let errors = client
        .execute("return window.consoleErrors || [];", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]));
    client.close().await.unwrap();
}

/// One HTTP/1.1 request to the console; its status and JSON body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A refused upload may be answered before it is all written.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_console_api_answers_bad_requests_with_typed_errors_and_saves_nothing_half() {
    let world = World::new("console-api", json!({}));
    let master_key = new_master_key();
    register_secret(PASSWORD);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut console = Running::spawn(with_key(
        world.command(
            "acme",
            &["console", "--listen", &listen, "--max-upload-mib", "1"],
        ),
        &master_key,
    ));
    console.wait_for("console at http://", Duration::from_secs(60));

    let (status, _) = request(port, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    let page = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    };
    let token = page
        .split("name=\"console-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let origin = format!("http://{listen}");
    let ours = [
        ("Origin", origin.as_str()),
        ("X-Console-Token", token.as_str()),
    ];
    let code = |answer: &serde_json::Value| {
        answer["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // Requests that do not come from the console's own page.
    let evil_host = format!("evil.example:{port}");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let refusals: [(&str, Headers, u16, &str); 4] = [
        (
            "POST",
            &[("X-Console-Token", &token)],
            403,
            "FORBIDDEN_ORIGIN",
        ),
        (
            "POST",
            &[
                ("Origin", "http://evil.example"),
                ("X-Console-Token", &token),
            ],
            403,
            "FORBIDDEN_ORIGIN",
        ),
        ("POST", &[("Origin", &origin)], 403, "BAD_TOKEN"),
        ("GET", &[("Host", &evil_host)], 421, "WRONG_HOST"),
    ];
    for (method, headers, status, expected) in refusals {
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        let (got, answer) = request(port, method, "/api/connections", headers, body);
        assert_eq!(
            (got, code(&answer)),
            (status, expected.to_string()),
            "{method} {headers:?}"
        );
    }
    // Malformed JSON.
    let (status, answer) = request(port, "POST", "/api/connections", &ours, b"{\"config\": ");
    assert_eq!((status, code(&answer)), (400, "BAD_JSON".into()));

    // A connection with a typed password and a pasted key: both go into the stores.
    let acme_key = std::fs::read_to_string(world.dir.join("acme/keys/acme.key.pem")).unwrap();
    let globex: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.dir.join("globex.json")).unwrap())
            .unwrap();
    let acme: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.dir.join("acme.json")).unwrap())
            .unwrap();
    let acme_cert = globex["partner"]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let globex_cert = acme["partner"]["certificate"].as_str().unwrap().to_string();
    let form = |station: serde_json::Value, partner_cert: &str| {
        let mut config = json!({
            "name": "Pasted key",
            "station": { "as2_id": world.acme_id, "certificate": acme_cert, "private_key_pem": { "value": acme_key } },
            "partner": { "as2_id": world.globex_id, "url": "http://127.0.0.1:9/as2", "certificate": partner_cert },
            "auth": { "type": "basic", "username": "acme", "password": { "value": PASSWORD } },
        });
        for (key, value) in station.as_object().unwrap() {
            config["station"][key] = value.clone();
        }
        json!({ "config": config })
    };
    let post = |body: &serde_json::Value| {
        request(
            port,
            "POST",
            "/api/connections",
            &ours,
            body.to_string().as_bytes(),
        )
    };
    let validate = |body: &serde_json::Value| {
        let (status, answer) = request(
            port,
            "POST",
            "/api/validate",
            &ours,
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        answer["problems"].as_array().unwrap().clone()
    };
    let problem_at = |problems: &[serde_json::Value], field: &str| {
        problems
            .iter()
            .find(|p| p["field"] == field)
            .map(|p| p["code"].as_str().unwrap().to_string())
    };

    // Certificate problems, each at its field, all at once.
    let expired = as2_connector::crypto::rustcrypto::generate_station_key(
        "OLD",
        std::time::SystemTime::now() - Duration::from_secs(3 * 86400),
        Duration::from_secs(86400),
    )
    .unwrap()
    .certificate_pem;
    let problems = validate(&form(json!({}), &expired));
    assert_eq!(
        problem_at(&problems, "/partner/certificate").as_deref(),
        Some("CERT_HAS_EXPIRED"),
        "{problems:?}"
    );
    let problems = validate(&form(
        json!({ "certificate": globex_cert }),
        "not a certificate",
    ));
    assert_eq!(
        problem_at(&problems, "/partner/certificate").as_deref(),
        Some("INVALID_CONFIG"),
        "{problems:?}"
    );
    assert_eq!(
        problem_at(&problems, "/station/private_key_pem/value").as_deref(),
        Some("INVALID_KEY"),
        "{problems:?}"
    );
    // With errors nothing is written: no file, no secret.
    let (status, answer) = post(&form(json!({ "certificate": globex_cert }), &globex_cert));
    assert_eq!((status, code(&answer)), (422, "INVALID_CONFIG".into()));
    assert!(
        answer["error"]["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    assert!(
        !world.dir.join("acme/connections").exists()
            || std::fs::read_dir(world.dir.join("acme/connections"))
                .unwrap()
                .next()
                .is_none()
    );
    assert!(
        !world
            .dir
            .join("acme/keys/pasted-key-key.key.sealed")
            .exists()
    );

    let (status, answer) = post(&form(json!({}), &globex_cert));
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    assert_eq!(id, "pasted-key");
    assert!(
        world
            .dir
            .join("acme/keys/pasted-key-key.key.sealed")
            .exists()
    );
    let (status, view) = request(port, "GET", &format!("/api/connections/{id}"), &[], b"");
    assert_eq!(status, 200);
    let view_text = view.to_string();
    let key_line = acme_key.lines().nth(1).unwrap();
    assert!(
        !view_text.contains(PASSWORD) && !view_text.contains(key_line),
        "{view_text}"
    );
    assert_eq!(
        view["config"]["auth"]["password"],
        json!({ "secret": "pasted-key-password" })
    );
    let file = std::fs::read_to_string(world.dir.join("acme/connections/pasted-key.json")).unwrap();
    assert!(
        !file.contains(PASSWORD) && !file.contains(key_line),
        "{file}"
    );

    // The same name again is refused, and the saved one stays as it was.
    let (status, answer) = post(&form(json!({}), &globex_cert));
    assert_eq!((status, code(&answer)), (409, "NAME_TAKEN".into()));
    assert_eq!(
        std::fs::read_to_string(world.dir.join("acme/connections/pasted-key.json")).unwrap(),
        file
    );
    // Saving the view back unchanged keeps the stored password and key.
    let (status, answer) = request(
        port,
        "PUT",
        &format!("/api/connections/{id}"),
        &ours,
        json!({ "config": view["config"] }).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let resaved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.dir.join("acme/connections/pasted-key.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        resaved["auth"]["password"],
        json!({ "secret": "pasted-key-password" })
    );
    assert_eq!(resaved["station"]["private_key"], "pasted-key-key");
    assert!(resaved["station"].get("private_key_pem").is_none());

    // An upload over the console's limit is refused before it is sent.
    let big = vec![b'x'; 2 << 20];
    let (status, answer) = request(
        port,
        "POST",
        &format!("/api/connections/{id}/send?name=big.x12"),
        &ours,
        &big,
    );
    assert_eq!((status, code(&answer)), (413, "TOO_LARGE".into()));
    let (status, sent) = request(
        port,
        "GET",
        &format!("/api/connections/{id}/messages?direction=out"),
        &[],
        b"",
    );
    assert_eq!((status, sent), (200, json!([])));
    // Unknown connections and messages.
    let (status, answer) = request(port, "GET", "/api/connections/nobody", &[], b"");
    assert_eq!((status, code(&answer)), (404, "NOT_FOUND".into()));
    let (status, answer) = request(port, "GET", "/api/connections/..%2Fkeys", &[], b"");
    assert_eq!((status, code(&answer)), (404, "NOT_FOUND".into()));
    let _ = console.kill();
}

/// Whether the console's control for `pointer` is shown (it and every
/// group around it).
async fn shown(client: &Client, pointer: &str) -> bool {
    let script = "let n = document.querySelector('[data-pointer=\"' + arguments[0] + '\"]'); \
        if (!n) throw new Error('no control ' + arguments[0]); \
        for (; n && n !== document.body; n = n.parentElement) { if (n.hidden && !n.classList.contains('category')) return false; } return true;";
    client.execute(script, vec![json!(pointer)]).await.unwrap() == json!(true)
}

/// Clicks the checkbox of `pointer`.
async fn toggle(client: &Client, pointer: &str) {
    field(client, pointer).await.click().await.unwrap();
}

/// Chooses `value` (the configuration's word for it) in the select of `pointer`.
async fn select(client: &Client, pointer: &str, value: &str) {
    let option = format!("\"{value}\"");
    field(client, pointer)
        .await
        .select_by_value(&option)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_forms_rules_show_and_hide_fields_as_the_ui_schema_says() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let world = World::new("console-rules", json!({}));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut console = Running::spawn(world.command("acme", &["console", "--listen", &listen]));
    console.wait_for("console at http://", Duration::from_secs(60));
    let (_driver, client) = start_browser(&chromium, &chromedriver).await;
    client.goto(&format!("http://{listen}/")).await.unwrap();
    wait_until(
        &client,
        "document.body.dataset.ready === 'true'",
        "the console loaded",
    )
    .await;
    click(&client, Locator::Id("new-connection")).await;

    // Every field of the UI schema is on the page, in its category.
    let ui: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/connection.uischema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for category in ui["elements"].as_array().unwrap() {
        let label = category["label"].as_str().unwrap();
        let mut scopes = Vec::new();
        collect_scopes(category, &mut scopes);
        for scope in scopes {
            let pointer = scope.trim_start_matches('#').replace("/properties/", "/");
            let in_category = client
                .execute(
                    "return !!document.querySelector('.category[data-category=\"' + arguments[0] + '\"] [data-pointer=\"' + arguments[1] + '\"]');",
                    vec![json!(label), json!(pointer)],
                )
                .await
                .unwrap();
            assert_eq!(in_category, json!(true), "{pointer} in {label}");
        }
    }

    // "Require MDNs from partners": checked, and cannot be changed.
    tab(&client, "Your AS2 station").await;
    let require_mdn = field(&client, "/station/require_mdn").await;
    assert_eq!(
        require_mdn.prop("checked").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        require_mdn.prop("disabled").await.unwrap().as_deref(),
        Some("true")
    );

    tab(&client, "Partner AS2 station").await;
    // The MDN verification algorithm only with a signed MDN.
    assert!(shown(&client, "/partner/mdn_micalg").await);
    select(&client, "/partner/mdn", "unsigned").await;
    assert!(!shown(&client, "/partner/mdn_micalg").await);
    select(&client, "/partner/mdn", "signed").await;
    assert!(shown(&client, "/partner/mdn_micalg").await);
    // The signature encoding only without encryption.
    assert!(!shown(&client, "/partner/signature_encoding").await);
    select(&client, "/partner/encryption", "none").await;
    assert!(shown(&client, "/partner/signature_encoding").await);
    assert!(!shown(&client, "/partner/key_transport").await);

    tab(&client, "Authentication").await;
    let basic = ["/auth/username", "/auth/password/value"];
    let token = ["/auth/token/value", "/auth/location"];
    let all = [
        "/auth/username",
        "/auth/password/value",
        "/auth/token/value",
        "/auth/location",
        "/auth/header_name",
        "/auth/scheme",
        "/auth/parameter_name",
        "/auth/configure_refresh",
        "/auth/refresh/relative_uri",
        "/auth/refresh/refresh_token/value",
    ];
    let visible = async |client: &Client| {
        let mut on = Vec::new();
        for pointer in all {
            if shown(client, pointer).await {
                on.push(pointer);
            }
        }
        on
    };
    assert_eq!(
        visible(&client).await,
        Vec::<&str>::new(),
        "no authentication: none of its fields"
    );
    select(&client, "/auth/type", "basic").await;
    assert_eq!(visible(&client).await, basic.to_vec());
    // This console runs without a master key: a typed password could not be kept.
    type_into(&client, "/auth/password/value", "typed").await;
    wait_until(
        &client,
        "document.querySelector('[data-pointer=\"/auth/password/value\"] [data-code=SECRETS_LOCKED]')",
        "the locked secret store named at the password",
    )
    .await;
    select(&client, "/auth/type", "token").await;
    let mut header = token.to_vec();
    header.extend([
        "/auth/header_name",
        "/auth/scheme",
        "/auth/configure_refresh",
    ]);
    assert_eq!(visible(&client).await, header, "a token in a header");
    select(&client, "/auth/location", "url").await;
    let mut url = token.to_vec();
    url.extend(["/auth/parameter_name", "/auth/configure_refresh"]);
    assert_eq!(visible(&client).await, url, "a token in a URL parameter");
    select(&client, "/auth/location", "body").await;
    let mut body = token.to_vec();
    body.push("/auth/configure_refresh");
    assert_eq!(
        visible(&client).await,
        body,
        "a token in the body: nothing more"
    );
    toggle(&client, "/auth/configure_refresh").await;
    assert!(shown(&client, "/auth/refresh/relative_uri").await);
    assert!(shown(&client, "/auth/refresh/refresh_token/value").await);
    toggle(&client, "/auth/configure_refresh").await;
    assert!(!shown(&client, "/auth/refresh/relative_uri").await);

    tab(&client, "Rate limits").await;
    assert!(!shown(&client, "/rate_limit/limit").await);
    toggle(&client, "/configure_rate_limits").await;
    assert!(shown(&client, "/rate_limit/limit").await);
    assert!(shown(&client, "/rate_limit/interval_seconds").await);

    let errors = client
        .execute("return window.consoleErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]));
    client.close().await.unwrap();
    let _ = console.kill();
}

fn collect_scopes(element: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(scope) = element["scope"].as_str()
        && element["type"] == "Control"
    {
        out.push(scope.to_string());
    }
    for child in element["elements"].as_array().into_iter().flatten() {
        collect_scopes(child, out);
    }
}

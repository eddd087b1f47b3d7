//! What a flow-builder platform does with our schema: renders
//! `schemas/connection.schema.json` and `connection.uischema.json` with
//! widely used third-party form renderers, installed from the npm registry
//! by this test (pinned by `tests/renderers/package-lock.json`), in
//! headless Chromium. JSON Forms (React, vanilla renderers) renders the
//! form with no console error or warning, every field of the UI schema in
//! its category, and its rules show and hide fields; react-jsonschema-form
//! renders the schema alone with every field type supported.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::{browser, click, start_browser, wait_until};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The renderers' npm project in a temporary folder, installed from the
/// lockfile, each renderer's page bundled by esbuild; `None` without npm
/// outside CI.
fn built_pages() -> Option<PathBuf> {
    let npm_found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !npm_found {
        assert!(
            std::env::var_os("AS2_REQUIRE_BROWSER").is_none(),
            "npm is missing: apt install npm (or Node.js 20)"
        );
        eprintln!("skipped: npm is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("as2-renderers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/renderers");
    for entry in std::fs::read_dir(&sources).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    for name in ["connection.schema.json", "connection.uischema.json"] {
        std::fs::copy(repository().join("schemas").join(name), dir.join(name)).unwrap();
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "npm ci in {}", dir.display());
    for renderer in ["jsonforms", "rjsf"] {
        std::fs::create_dir_all(dir.join(renderer)).unwrap();
        std::fs::copy(dir.join("page.html"), dir.join(renderer).join("page.html")).unwrap();
        let status = Command::new(dir.join("node_modules/.bin/esbuild"))
            .arg(format!("{renderer}.jsx"))
            .args(["--bundle", "--loader:.json=json", "--log-level=warning"])
            .arg("--define:process.env.NODE_ENV=\"production\"")
            .arg(format!("--outfile={renderer}/bundle.js"))
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "esbuild {renderer}.jsx");
    }
    Some(dir)
}

/// The Controls of a UI schema element, with their labels.
fn controls(element: &Value, out: &mut Vec<(String, String)>) {
    if element["type"] == "Control" {
        out.push((
            element["scope"].as_str().unwrap().to_string(),
            element["label"].as_str().unwrap_or_default().to_string(),
        ));
    }
    for child in element["elements"].as_array().into_iter().flatten() {
        controls(child, out);
    }
}

async fn no_console_errors(client: &Client, renderer: &str) {
    let errors = client
        .execute("return window.consoleErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]), "{renderer} wrote errors or warnings");
}

/// Whether the JSON Forms control for `scope` is displayed.
async fn displayed(client: &Client, scope: &str) -> bool {
    let script =
        "const c = document.getElementById(arguments[0]); return !!c && c.offsetParent !== null;";
    client.execute(script, vec![json!(scope)]).await.unwrap() == json!(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_forms_and_rjsf_render_the_connection_form() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let Some(pages) = built_pages() else {
        return;
    };
    let (_driver, client) = start_browser(&chromium, &chromedriver).await;
    let ui: Value = serde_json::from_str(
        &std::fs::read_to_string(repository().join("schemas/connection.uischema.json")).unwrap(),
    )
    .unwrap();

    // JSON Forms, with the UI schema: every category, every field, the rules.
    let url = format!("file://{}", pages.join("jsonforms/page.html").display());
    client.goto(&url).await.unwrap();
    wait_until(
        &client,
        "window.rendered && document.querySelector('.categorization')",
        "JSON Forms rendered",
    )
    .await;
    for category in ui["elements"].as_array().unwrap() {
        let label = category["label"].as_str().unwrap();
        let tabs = client
            .find_all(Locator::Css(".category-subcategories li"))
            .await
            .unwrap();
        let mut found = false;
        for tab in tabs {
            if tab.text().await.unwrap() == label {
                tab.click().await.unwrap();
                found = true;
            }
        }
        assert!(found, "no category {label:?} in JSON Forms' page");
        let mut fields = Vec::new();
        controls(category, &mut fields);
        for (scope, field_label) in fields {
            let present = client
                .execute(
                    // Controls carry the scope as id, array tables as a class.
                    "const s = arguments[0]; const c = document.getElementById(s) || document.querySelector('.root' + s.slice(1).replace(/\\//g, '_')); return c ? c.textContent : null;",
                    vec![json!(scope)],
                )
                .await
                .unwrap();
            let text = present
                .as_str()
                .unwrap_or_else(|| panic!("JSON Forms did not render {scope} ({label})"));
            assert!(
                text.contains(&field_label),
                "{scope}: {text:?} has no label {field_label:?}"
            );
        }
    }
    no_console_errors(&client, "JSON Forms").await;

    // A rule: the async MDN URL shows only with "Partner requires asynchronous MDNs".
    let tabs = client
        .find_all(Locator::Css(".category-subcategories li"))
        .await
        .unwrap();
    for tab in tabs {
        if tab.text().await.unwrap() == "Partner AS2 station" {
            tab.click().await.unwrap();
        }
    }
    let async_url = "#/properties/partner/properties/async_mdn_url";
    let checkbox = "#/properties/partner/properties/requires_async_mdn-input";
    assert!(
        !displayed(&client, async_url).await,
        "shown before the box is checked"
    );
    click(&client, Locator::Id(checkbox)).await;
    wait_until(
        &client,
        &format!("document.getElementById('{async_url}') && document.getElementById('{async_url}').offsetParent !== null"),
        "the async MDN URL shown",
    )
    .await;
    click(&client, Locator::Id(checkbox)).await;
    wait_until(
        &client,
        &format!("!document.getElementById('{async_url}') || document.getElementById('{async_url}').offsetParent === null"),
        "the async MDN URL hidden again",
    )
    .await;
    // JSON Forms reports the data through its change callback, which may
    // come after the rule has already hidden the field.
    wait_until(
        &client,
        "window.formData && window.formData.partner && window.formData.partner.requires_async_mdn === false",
        "the form's data to say the box is unchecked",
    )
    .await;
    let data = client
        .execute("return window.formData;", vec![])
        .await
        .unwrap();
    assert_eq!(
        data["partner"]["requires_async_mdn"],
        json!(false),
        "{data}"
    );
    no_console_errors(&client, "JSON Forms").await;

    // react-jsonschema-form, from the JSON Schema alone.
    let url = format!("file://{}", pages.join("rjsf/page.html").display());
    client.goto(&url).await.unwrap();
    wait_until(
        &client,
        "window.rendered && document.querySelector('form.rjsf')",
        "rjsf rendered",
    )
    .await;
    let text = client
        .find(Locator::Css("form.rjsf"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("Unsupported field schema"), "{text}");
    for id in [
        "root_name",
        "root_station_as2_id",
        "root_station_decryption",
        "root_partner_url",
        "root_partner_certificate",
        "root_partner_encryption",
        "root_partner_mdn",
    ] {
        client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("rjsf has no field {id}: {e}"));
    }
    no_console_errors(&client, "rjsf").await;
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&pages);
}

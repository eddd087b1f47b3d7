//! The `as2-harness` command line, run as a user would, with debug logs on:
//! a connection saved with a typed-in password, validated, tested and used to
//! send, while the partner's endpoint serves. No password, Basic credential,
//! master key or private key appears in anything it prints or writes beside
//! the stores meant for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;

const PASSWORD: &str = "pw-7f3a9c2e-never-print-me";

fn harness() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_as2-harness"));
    // Everything at debug, but the compiler's own chatter.
    command.env(
        "RUST_LOG",
        "debug,cranelift_codegen=warn,cranelift_frontend=warn,regalloc2=warn,wasmtime=warn,wasmtime_internal_cranelift=warn,wasmtime_internal_cache=warn",
    );
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(dir: &Path, data: &str, master_key: &str, args: &[&str]) -> Output {
    harness()
        .current_dir(dir)
        .env("AS2_MASTER_KEY", master_key)
        .args(["--data-dir", data])
        .args(args)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_appears_in_the_output_logs_or_saved_files() {
    let dir = std::env::temp_dir().join(format!("as2-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut printed = String::new();

    let key = harness()
        .args(["secrets", "new-master-key"])
        .output()
        .unwrap();
    assert!(key.status.success());
    let master_key = String::from_utf8(key.stdout).unwrap().trim().to_string();

    for (data, name, cn) in [("acme", "acme", "ACME"), ("globex", "globex", "GLOBEX")] {
        let output = run(
            &dir,
            data,
            &master_key,
            &["keys", "generate", name, "--common-name", cn],
        );
        assert!(output.status.success(), "{}", text(&output));
        std::fs::write(dir.join(format!("{name}.cert.pem")), &output.stdout).unwrap();
        printed += &String::from_utf8_lossy(&output.stderr);
    }
    let pem = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.cert.pem"))).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/as2");
    let form = serde_json::json!({
        "name": "ACME to GLOBEX",
        "station": { "as2_id": "ACME", "private_key": "acme" },
        "partner": { "as2_id": "GLOBEX", "url": url, "certificate": pem("globex") },
        "auth": { "type": "basic", "username": "acme", "password": { "value": PASSWORD } }
    });
    std::fs::write(dir.join("form.json"), form.to_string()).unwrap();
    let receiving = serde_json::json!({
        "name": "GLOBEX from ACME",
        "station": { "as2_id": "GLOBEX", "private_key": "globex" },
        "partner": { "as2_id": "ACME", "url": "http://127.0.0.1:9/", "certificate": pem("acme") }
    });
    std::fs::write(dir.join("globex.json"), receiving.to_string()).unwrap();
    std::fs::write(dir.join("po.x12"), "ST*850*0001~\n").unwrap();

    // The unsaved form is refused without repeating the password.
    let output = run(&dir, "acme", &master_key, &["validate", "form.json"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("/auth/password"),
        "{}",
        text(&output)
    );
    printed += &text(&output);

    let output = run(
        &dir,
        "acme",
        &master_key,
        &["connections", "save", "form.json", "--out", "acme.json"],
    );
    assert!(output.status.success(), "{}", text(&output));
    printed += &text(&output);
    let saved = std::fs::read_to_string(dir.join("acme.json")).unwrap();
    assert!(
        saved.contains("\"secret\": \"acme-to-globex-password\""),
        "{saved}"
    );

    let mut serve = harness()
        .current_dir(&dir)
        .env("AS2_MASTER_KEY", &master_key)
        .args(["--data-dir", "globex", "serve", "globex.json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..1200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        if let Ok(Some(_)) = serve.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !ready {
        let _ = serve.kill();
        let output = serve.wait_with_output().unwrap();
        panic!("serve did not start listening: {}", text(&output));
    }

    for args in [
        vec!["validate", "acme.json"],
        vec!["test-connection", "acme.json"],
        vec!["send", "acme.json", "po.x12"],
        vec!["secrets", "list"],
    ] {
        let output = run(&dir, "acme", &master_key, &args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        printed += &text(&output);
    }
    let _ = serve.kill();
    let served = serve.wait_with_output().unwrap();
    printed += &text(&served);
    assert!(
        printed.contains("acknowledged"),
        "the document went through: {printed}"
    );

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("acme:{PASSWORD}"));
    let mut written = Vec::new();
    files_under(&dir, &mut written);
    let mut leaks = Vec::new();
    for (secret, what) in [
        (PASSWORD, "the password"),
        (basic.as_str(), "the Basic credential"),
        (master_key.as_str(), "the master key"),
        ("PRIVATE KEY", "a private key"),
    ] {
        if printed.contains(secret) {
            leaks.push(format!("{what} in the output"));
        }
        for path in &written {
            let bytes = std::fs::read(path).unwrap();
            if String::from_utf8_lossy(&bytes).contains(secret) {
                let name = path.strip_prefix(&dir).unwrap().display().to_string();
                // The form itself holds the password the user typed.
                if !(name == "form.json" && secret == PASSWORD) {
                    leaks.push(format!("{what} in {name}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

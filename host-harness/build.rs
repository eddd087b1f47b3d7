//! Builds the connector component (`wasm32-wasip2`) as part of the harness
//! build, so that `cargo run` / `cargo test` need no manual step and the
//! embedded component always matches the WIT the host was compiled against.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host-harness sits in the workspace")
        .to_path_buf();
    for watched in [
        "connector/src",
        "connector/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=AS2_COMPONENT_WASM");

    let faults = env::var_os("CARGO_FEATURE_FAULT_COMPONENT").is_some();
    // A prebuilt component can be supplied instead (e.g. by a packager).
    if let Ok(prebuilt) = env::var("AS2_COMPONENT_WASM") {
        println!("cargo:rustc-env=AS2_COMPONENT_WASM={prebuilt}");
    } else {
        ensure_target(&root);
        let wasm = build_component(&root, &[], "component");
        println!("cargo:rustc-env=AS2_COMPONENT_WASM={}", wasm.display());
    }
    // The sandbox tests' misbehaving build, only when they ask for it.
    if faults {
        ensure_target(&root);
        let wasm = build_component(&root, &["fault-switch"], "component-faults");
        println!(
            "cargo:rustc-env=AS2_FAULT_COMPONENT_WASM={}",
            wasm.display()
        );
    }
}

/// Builds the connector for wasm32-wasip2 with `features` in the target
/// subfolder `folder`; returns the component's path.
fn build_component(root: &Path, features: &[&str], folder: &str) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A separate target directory: sharing the outer one deadlocks on cargo's lock.
    let target_dir = env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join(folder);
    let mut command = Command::new(&cargo);
    command.current_dir(root).args([
        "build",
        "--package",
        "as2-connector",
        "--lib",
        "--no-default-features",
        "--target",
        TARGET,
        "--profile",
        "component",
        "--target-dir",
    ]);
    command.arg(&target_dir);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let status = command
        // Flags meant for the host build (coverage, sanitizers) break the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("failed to run cargo to build the component");
    if !status.success() {
        panic!("building the connector component for {TARGET} failed (see the errors above)");
    }
    let wasm = target_dir
        .join(TARGET)
        .join("component")
        .join("as2_connector.wasm");
    assert!(
        wasm.exists(),
        "the component build produced no {}",
        wasm.display()
    );
    wasm
}

/// Makes sure the wasm target's standard library is installed: the project's
/// machines set `RUSTUP_AUTO_INSTALL=0`, so `rust-toolchain.toml` alone
/// installs nothing. Installs it with rustup when possible, otherwise stops
/// with the one command to run.
fn ensure_target(root: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = |sysroot: &Option<PathBuf>| {
        sysroot
            .as_ref()
            .is_some_and(|s| s.join("lib/rustlib").join(TARGET).join("lib").is_dir())
    };
    if installed(&sysroot) {
        return;
    }
    let added = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if !added || !installed(&sysroot) {
        panic!(
            "\n\nThe Rust standard library for {TARGET} is not installed, and `rustup target add` failed.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}

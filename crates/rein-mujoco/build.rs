//! Makes `cargo test` and `cargo run` find MuJoCo's shared library without LD_LIBRARY_PATH:
//! Cargo adds a build script's link-search directories to the dynamic-library path of what it
//! runs, but only those inside the target directory, so the library is copied into OUT_DIR.
//! (Binaries run directly get an rpath from the crates that build them: rein-cli, rein-py.)

use std::path::PathBuf;

const LIBRARY: &str = "libmujoco.so.3.17.0";

fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    let Ok(dir) = std::env::var("MUJOCO_DYNAMIC_LINK_DIR") else {
        return; // mujoco-rs finds MuJoCo another way (pkg-config) and says so if it cannot.
    };
    let source = PathBuf::from(&dir).join(LIBRARY);
    println!("cargo::rerun-if-changed={}", source.display());
    if !source.is_file() {
        // mujoco-rs stops the build with its own message; this one says how to get the library.
        println!(
            "cargo::warning=MuJoCo 3.17.0 is not in {dir}: run scripts/fetch-mujoco.sh (it unpacks the PyPI wheel mujoco==3.17.0 there)"
        );
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("lib");
    std::fs::create_dir_all(&out).expect("creating OUT_DIR/lib");
    let target = out.join(LIBRARY);
    let fresh = std::fs::metadata(&target)
        .and_then(|t| Ok(t.len() == std::fs::metadata(&source)?.len()))
        .unwrap_or(false);
    if !fresh {
        std::fs::copy(&source, &target).expect("copying libmujoco into OUT_DIR");
    }
    println!("cargo::rustc-link-search=native={}", out.display());
}

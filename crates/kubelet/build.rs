//! Builds the pod sandbox's `pause` binary (`pause/pause.c`) with the system C compiler
//! into `OUT_DIR/pause`, which `src/image/builtin.rs` embeds. The program makes raw system
//! calls, so it needs no libc and links statically to a few hundred bytes. `CC` (or
//! `CC_<target>` / `TARGET_CC`, as the `cc` crate reads them) picks another compiler, for
//! cross builds; a compiler failure fails the build with the compiler's message.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    if let Err(e) = build() {
        eprintln!("error: building the pause binary: {e}");
        std::process::exit(1);
    }
}

/// The compiler to run: the target's `CC` if one is set, else `cc`.
fn compiler() -> String {
    let target = std::env::var("TARGET").unwrap_or_default();
    let names = [
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_owned(),
        "CC".to_owned(),
    ];
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
    }
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "cc".to_owned())
}

fn build() -> Result<(), String> {
    println!("cargo:rerun-if-changed=pause/pause.c");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let out = PathBuf::from(out_dir).join("pause");
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let cc = compiler();
    // `cc` may be a command with arguments (`CC="ccache gcc"`).
    let mut words = cc.split_whitespace();
    let program = words.next().ok_or("the C compiler name is empty")?;
    let output = Command::new(program)
        .args(words)
        .args([
            "-static",
            "-nostdlib",
            "-Os",
            "-ffreestanding",
            // No canary (it reads thread-local storage nobody set up), no PIE (nothing
            // would relocate it), no unwind tables, no build id, stripped.
            "-fno-stack-protector",
            "-fno-pie",
            "-no-pie",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--build-id=none",
            "-Wl,-z,noseparate-code",
            "-Wl,-z,norelro",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg(PathBuf::from(manifest_dir).join("pause/pause.c"))
        .output()
        .map_err(|e| format!("running the C compiler `{cc}` (set CC to choose another): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{cc}` failed ({}) compiling pause/pause.c:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

//! Wall time of `sipform validate`: the bundled project, then 1,000 generated restaurants.
//! Run with `cargo bench --bench validate` (release build; prints the median of 5 runs).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// One restaurant file; the flags cycle so every template branch is exercised.
fn restaurant(i: usize) -> String {
    format!(
        "id: 00000000-0000-4000-8000-{i:012}\nname: Restaurant {i}\nphone: \"+3314{i:07}\"\n\
         contact_email: r{i}@example.fr\ndelivery_enabled: {}\nreservation_enabled: {}\n\
         order_status_enabled: {}\ntransfer_enabled: {}\ntransfer_phone_number: \"+3399{i:07}\"\n\
         chat_enabled: {}\nsip_enabled: true\n",
        i.is_multiple_of(2),
        i.is_multiple_of(3),
        i.is_multiple_of(5),
        i.is_multiple_of(7),
        i.is_multiple_of(4),
    )
}

fn median_run(dir: &Path) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_sipform"))
            .arg("validate")
            .arg(dir)
            .env_remove("NEXT_PUBLIC_APP_URL")
            .output()
            .expect("run sipform");
        times.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("validate, bundled project: {:?}", median_run(root));

    let tmp = tempfile::tempdir().expect("tempdir");
    // docs/: sipform.yaml's platform.openapi, the contract validate checks the tools against.
    for d in ["tools", "templates", "docs"] {
        copy_dir(&root.join(d), &tmp.path().join(d));
    }
    std::fs::copy(root.join("sipform.yaml"), tmp.path().join("sipform.yaml")).expect("copy");
    let dir = tmp.path().join("restaurants");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..1000 {
        std::fs::write(dir.join(format!("r{i:04}.yaml")), restaurant(i)).expect("write");
    }
    println!("validate, 1,000 restaurants: {:?}", median_run(tmp.path()));
}

//! `kindling version`: this build and every upstream release it pins (`kindling::pins`).

use kindling::pins::{self, Integrity};
use serde_json::{Value, json};

use super::Output;

pub fn run(output: Output) -> anyhow::Result<()> {
    let pins = pins::all();
    if output == Output::Json {
        let rows: Vec<Value> = pins.iter().map(pin_json).collect();
        let doc = json!({ "kindling": env!("CARGO_PKG_VERSION"), "pins": rows });
        super::print_json(doc);
        return Ok(());
    }
    println!("kindling {}", env!("CARGO_PKG_VERSION"));
    println!();
    let name_width = pins.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let version_width = pins.iter().map(|p| p.version.len()).max().unwrap_or(0);
    for pin in &pins {
        println!(
            "{:name_width$}  {:version_width$}  {}",
            pin.name, pin.version, pin.artifact
        );
        for line in pin.integrity.describe().split("; ") {
            println!("{:name_width$}  {:version_width$}  {line}", "", "");
        }
    }
    Ok(())
}

fn pin_json(pin: &pins::Pin) -> Value {
    let mut row = json!({
        "name": pin.name,
        "version": pin.version,
        "role": pin.role,
        "artifact": pin.artifact,
    });
    let fields = match pin.integrity {
        Integrity::Sha256(sum) => json!({ "sha256": sum }),
        Integrity::PlatformSha256(sums) => {
            let by_platform: serde_json::Map<String, Value> = sums
                .iter()
                .map(|(platform, sum)| (platform.to_string(), json!(sum)))
                .collect();
            json!({ "sha256ByPlatform": by_platform })
        }
        Integrity::Digest => json!({ "digest": pin.artifact.rsplit_once('@').map(|(_, d)| d) }),
        Integrity::Unpinned(why) => json!({ "unpinnedBecause": why }),
    };
    if let (Some(row), Value::Object(fields)) = (row.as_object_mut(), fields) {
        row.extend(fields);
    }
    row
}

//! `kindling doctor`: every finding with its fix; exit 1 when something fails.

use kindling::cluster::tools::{k3d_tool, kind_tool};
use kindling::doctor::{self, Finding, Status};
use serde_json::json;

use super::Output;

pub fn run(output: Output) -> anyhow::Result<()> {
    let data = kindling::paths::data_dir();
    let path = std::env::var_os("PATH");
    let mut findings: Vec<Finding> = vec![doctor::check_docker_socket(
        std::env::var("DOCKER_HOST").ok().as_deref(),
        std::path::Path::new("/var/run/docker.sock"),
    )];
    findings.push(doctor::check_tool(&kind_tool(), &data, path.as_deref()));
    findings.push(doctor::check_tool(&k3d_tool(), &data, path.as_deref()));
    findings.extend(doctor::check_ca(&data, time::OffsetDateTime::now_utc()));
    findings.extend(doctor::check_ports(&[8080, 8443]));
    findings.extend(doctor::check_inotify());
    findings.extend(doctor::check_proxy());
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if output == Output::Json {
        println!("{:#}", json!({ "ok": failed == 0, "findings": findings }));
    } else {
        for f in &findings {
            let mark = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{mark}  {:<9} {}", f.check, f.detail);
            if let Some(fix) = &f.fix {
                println!("      {:<9} fix: {fix}", "");
            }
        }
    }
    if failed > 0 {
        let message = format!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
        return Err(super::AlreadyReported(message).into());
    }
    Ok(())
}

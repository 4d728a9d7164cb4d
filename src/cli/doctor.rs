//! `kindling doctor`: every finding with its fix; exit 1 when something fails.

use kindling::cluster::tools::{k3d_tool, kind_tool};
use kindling::doctor::{self, Finding, Status};
use serde_json::json;

use super::Output;

pub fn run(output: Output) -> anyhow::Result<()> {
    let data = kindling::paths::data_dir();
    let path = std::env::var_os("PATH");
    let endpoint = kindling::docker::endpoint::resolve();
    let reach = endpoint.as_ref().ok().map(doctor::check_docker_reach);
    let mut findings: Vec<Finding> = vec![doctor::check_docker_endpoint(endpoint)];
    findings.extend(reach);
    // The CA's keys readable only by their owner.
    let (_, root_key) = kindling::pki::root_paths(&data);
    if let Some(warning) = kindling::pki::key_exposure(&root_key) {
        let (detail, fix) = warning
            .split_once("; ")
            .map(|(d, f)| (d.to_string(), Some(f.to_string())))
            .unwrap_or((warning.clone(), None));
        findings.push(Finding {
            check: "ca key".into(),
            status: Status::Warn,
            detail,
            fix,
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = runtime.block_on(async {
        let docker = kindling::docker::DockerClient::connect().await?;
        docker.engine_facts().await
    });
    match engine {
        Ok(facts) => {
            let root = std::path::Path::new(&facts.root_dir);
            // The engine's root dir may not be visible from here (Docker Desktop, a remote
            // engine); then judge the data dir's disk instead.
            let free = doctor::free_disk_kib(if root.is_dir() { root } else { &data })
                .or_else(|| doctor::free_disk_kib(std::path::Path::new("/")));
            findings.extend(doctor::judge_engine(&facts, free));
        }
        Err(e) => findings.push(Finding {
            check: "docker".into(),
            status: Status::Fail,
            detail: format!("the engine does not answer: {e}"),
            fix: Some("start Docker (Linux: `sudo systemctl start docker`; Docker Desktop: start the app)".into()),
        }),
    }
    findings.push(doctor::check_tool(&kind_tool(), &data, path.as_deref()));
    findings.push(doctor::check_tool(&k3d_tool(), &data, path.as_deref()));
    findings.extend(doctor::check_ca(&data, time::OffsetDateTime::now_utc()));
    findings.extend(doctor::check_ports(&[8080, 8443]));
    findings.extend(doctor::check_inotify());
    findings.extend(doctor::check_proxy());
    let settings = kindling::env::Settings::from_env();
    findings.extend(doctor::check_bundle(
        &data,
        &settings.cache_dir,
        (&settings.gitea_image, &settings.registry_image),
    ));
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if output == Output::Json {
        super::print_json(json!({ "ok": failed == 0, "findings": findings }));
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

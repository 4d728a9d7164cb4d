//! The human-readable reports of `kindling env …` (`--output json` prints the reports as
//! they are).

use kindling::env::Settings;
use kindling::env::approve::ApproveReport;
use kindling::env::create::CreateReport;
use kindling::env::delete::DeleteReport;
use kindling::env::list::ListEntry;
use kindling::env::plan::Plan;
use kindling::env::power::PowerReport;
use kindling::env::restart::RestartReport;
use kindling::env::status::StatusReport;
use kindling::env::sync::SyncReport;

pub fn plan(plan: &Plan) {
    println!(
        "plan for env {} (nothing was changed):\n  stamp {}, {} + {}\n  cluster {} (context {}), ingress 127.0.0.1:{}/{}\n  steps: {}\n\n# {} config\n{}\n# bootstrap objects (credentials redacted)",
        plan.env,
        plan.stamp,
        plan.provider.name(),
        plan.engine.name(),
        plan.cluster.name,
        plan.context,
        plan.ports.http,
        plan.ports.https,
        plan.steps.join(" → "),
        plan.provider.name(),
        plan.cluster_config
    );
    if !plan.host_values.is_empty() {
        println!(
            "# read from this host into the cluster (check before creating from a stamp you did not write)"
        );
        for v in &plan.host_values {
            println!(
                "#   {} key {}: {}",
                kindling::ui::printable(&v.secret),
                kindling::ui::printable(&v.key),
                kindling::ui::printable(&v.from)
            );
        }
    }
    if !plan.extra_ca.is_empty() {
        println!("# the network's root CAs the nodes, Gitea, caches and chart sources will trust");
        for root in &plan.extra_ca {
            println!(
                "#   {} (SHA-256 {}, until {})",
                kindling::ui::printable(&root.subject),
                root.fingerprint_sha256,
                root.not_after.date()
            );
        }
    }
    for o in &plan.bootstrap {
        println!(
            "---\n{}",
            serde_yaml_ng::to_string(o).unwrap_or_default().trim_end()
        );
    }
    for p in &plan.packages {
        println!("# package {}", p.dir.display());
        for (repo, dir) in &p.repositories {
            println!("#   repository {repo} <- {}", dir.display());
        }
        for (from, to) in &p.rewrites {
            println!("#   {from} -> {to}");
        }
        for o in &p.objects {
            println!("#   applies {o}");
        }
        for i in &p.ignored {
            println!("#   ignored: {i}");
        }
    }
}

pub fn created(report: &CreateReport, settings: &Settings) {
    let state = if report.awaiting_approval {
        "is registered and awaiting approval (`kindling env approve`)"
    } else if report.status.is_some() {
        "is ready"
    } else {
        "is created; the engine is reconciling"
    };
    println!(
        "\nenv {} {state} (stamp {}, {} + {})",
        report.env,
        report.stamp,
        report.provider.name(),
        report.engine.name()
    );
    println!(
        "  Gitea:      {}/{}/{} (user {}; password in {})",
        report.gitea_url,
        kindling::gitea::ADMIN_USER,
        kindling::gitea::REPOSITORY,
        kindling::gitea::ADMIN_USER,
        kindling::env::state::EnvState::path(&settings.env_dir(&report.env)).display()
    );
    for url in &report.ingress_urls {
        println!("  ingress:    {url}");
    }
    println!("  context:    {}", report.context);
    println!("  kubeconfig: {}", report.kubeconfig.display());
    println!("next:");
    for n in &report.next {
        println!("  {n}");
    }
}

pub fn status(report: &StatusReport) {
    println!(
        "env {}: stamp {}, {} + {}{}{}",
        report.env,
        report.stamp,
        report.provider,
        report.engine,
        report
            .engine_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
        match report.engine_origin {
            "found" => " (the cluster's, used as found)",
            _ => "",
        }
    );
    // Only where it is not the engine's own namespace is it news.
    let engine_namespaces = [
        kindling::engine::flux::NAMESPACE,
        kindling::engine::argo::NAMESPACE,
    ];
    if !engine_namespaces.contains(&report.engine_objects_namespace.as_str()) {
        println!(
            "  {} objects in namespace {} (the env's own, beside its Gitea)",
            report.engine, report.engine_objects_namespace
        );
    }
    if let Some(c) = &report.cert_manager {
        println!(
            "  cert-manager {} of the cluster in {} (the stamp's install is left out; the env's CA Secret is in {})",
            c.version, c.namespace, c.resource_namespace
        );
    }
    if !report.stacks.is_empty() {
        println!(
            "  stacks   {} (beside the stamp; `env down` removes one)",
            report.stacks.join(", ")
        );
    }
    if !report.addons.is_empty() {
        println!("  add-ons  {}", report.addons.join(", "));
        for u in &report.addon_urls {
            println!("    {}: {} {}", u.addon, u.what, u.url);
        }
    }
    println!(
        "  cluster  {:<28} {}",
        report.cluster.name, report.cluster.state
    );
    println!(
        "  gitea    {:<28} {} {}",
        report.gitea.name,
        report.gitea.state,
        report.gitea.url.as_deref().unwrap_or_default()
    );
    if let Some(r) = &report.registry {
        println!(
            "  registry {:<28} {} {}",
            r.name,
            r.state,
            r.url.as_deref().unwrap_or_default()
        );
    }
    if let Some(c) = &report.commit {
        println!("  commit   {c}");
    }
    for url in &report.urls {
        println!("  url      {url}");
    }
    if !report.unfinished_steps.is_empty() {
        println!(
            "  unfinished create steps: {} (rerun `kindling env create {} --stamp {}`)",
            report.unfinished_steps.join(", "),
            report.env,
            report.stamp
        );
    }
    if report.suspended {
        println!(
            "  suspended: {} objects paused; nothing reconciles until `kindling env resume {}`",
            report
                .suspended_objects
                .map(|n| n.to_string())
                .unwrap_or_else(|| "its".to_string()),
            report.env
        );
    }
    if let Some(r) = &report.reconciliation {
        for gate in &r.gates {
            println!(
                "  gate {gate}: waits, with what depends on it, for `kindling env approve {} {gate}`",
                report.env
            );
        }
    }
    for pod in &report.failing_pods {
        println!(
            "  pod {}/{}: {}{}",
            pod.namespace,
            pod.name,
            pod.reason,
            if pod.message.is_empty() {
                String::new()
            } else {
                format!(" ({})", pod.message)
            }
        );
    }
    for s in &report.storage {
        println!(
            "  storage {} {} ({}): volume {} {}{}",
            s.name,
            s.path,
            s.host_path.display(),
            s.volume,
            s.phase,
            s.claim
                .as_deref()
                .map(|c| format!(" to {c}"))
                .unwrap_or_default()
        );
    }
    if let Some(e) = &report.error {
        println!("  engine: {e}");
    }
    if let Some(s) = &report.reconciliation {
        println!();
        print!("{}", kindling::engine::status::render_table(s));
    }
    for unchecked in &report.drift_unchecked {
        println!("not compared with Git: {unchecked}");
    }
    if !report.packages.is_empty() {
        println!();
    }
    for p in &report.packages {
        println!(
            "package {}: {} {}",
            p.package
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            p.object,
            p.state
        );
        for g in &p.generated {
            println!("  generated {g}");
        }
    }
    if !report.objects.is_empty() {
        println!();
    }
    for o in &report.objects {
        let mut parts: Vec<String> = o
            .workloads
            .iter()
            .map(|w| format!("{} {}/{} {}", w.kind, w.namespace, w.name, w.ready))
            .collect();
        parts.extend(o.services.iter().map(|s| format!("Service {s}")));
        parts.extend(
            o.claims
                .iter()
                .map(|c| format!("PVC {}/{} {}", c.namespace, c.name, c.phase)),
        );
        parts.extend(o.urls.iter().cloned());
        println!("  {}: {}", o.entry, parts.join(", "));
    }
}

pub fn synced(report: &SyncReport) {
    println!(
        "env {} at {}{} ({:.1}s)",
        report.env,
        report.commit,
        if report.changed { "" } else { " (no change)" },
        report.duration_ms as f64 / 1000.0
    );
}

pub fn restarted(report: &RestartReport) {
    println!(
        "env {}: stamp {} removed, stamp {} bootstrapped at {}",
        report.env, report.removed_stamp, report.stamp, report.commit
    );
}

pub fn suspended(report: &kindling::env::suspend::SuspendReport) {
    if report.suspended {
        println!(
            "env {} suspended ({} objects): nothing reconciles; `kindling env sync` still pushes; `kindling env resume {}` continues",
            report.env,
            report.patched.len(),
            report.env
        );
    } else {
        println!(
            "env {} resumed ({} objects) and asked to reconcile",
            report.env,
            report.patched.len()
        );
    }
}

pub fn built(report: &kindling::env::build::BuildReport) {
    println!(
        "built and pushed {} ({})\nuse `image: {}` in the env's manifests (HostK8s stacks: {}); the nodes pull it from the env's registry",
        report.image, report.digest, report.image, report.hostk8s_image
    );
}

pub fn stack_up(report: &kindling::env::stacks::UpReport) {
    println!(
        "stack {} up on env {} at commit {}: {}",
        report.stack,
        report.env,
        report.commit,
        report.entries.join(", ")
    );
    if !report.shared.is_empty() {
        println!(
            "shared with another stack of the env: {}",
            report.shared.join(", ")
        );
    }
    if let Some(status) = &report.status {
        for e in status
            .entries
            .iter()
            .filter(|e| report.entries.contains(&e.name))
        {
            println!("  {:<28} {:?} {}", e.name, e.readiness, e.message);
        }
    }
}

pub fn stack_down(report: &kindling::env::stacks::DownReport) {
    if !report.was_up {
        println!("stack {} was not up on env {}", report.stack, report.env);
        return;
    }
    println!(
        "stack {} down on env {}: removed {}",
        report.stack,
        report.env,
        if report.removed.is_empty() {
            "nothing of its own".to_string()
        } else {
            report.removed.join(", ")
        }
    );
    if !report.kept_shared.is_empty() {
        println!(
            "kept, another stack declares them too: {}",
            report.kept_shared.join(", ")
        );
    }
    for dir in &report.storage_kept {
        println!(
            "storage kept for its next `env up`: {} (`kindling env delete {} --purge` removes it with the env)",
            dir.display(),
            report.env
        );
    }
}

pub fn deployed(report: &kindling::env::apps::DeployReport) {
    println!(
        "app {} ({:?}) deployed in namespace {}{} as entry {} at commit {}",
        report.app,
        report.kind,
        report.namespace,
        if report.namespace_created {
            " (made for it)"
        } else {
            ""
        },
        report.entry,
        report.commit
    );
}

pub fn removed_app(report: &kindling::env::apps::RemoveReport) {
    if !report.was_deployed {
        println!(
            "app {} was not deployed in namespace {} of env {}",
            report.app, report.namespace, report.env
        );
        return;
    }
    println!(
        "app {} removed from namespace {}{}",
        report.app,
        report.namespace,
        if report.namespace_removed {
            " (the namespace kindling made for it too)"
        } else {
            ""
        }
    );
}

pub fn promoted(report: &kindling::env::promote::PromoteReport) {
    if report.changes.is_empty() {
        println!("nothing to promote: every tag is already the one asked for");
        return;
    }
    for c in &report.changes {
        println!(
            "{} {}: {} → {} ({})",
            c.entry,
            c.image,
            c.from.as_deref().unwrap_or("(none)"),
            c.to,
            c.file.display()
        );
    }
    if let Some(commit) = &report.commit {
        println!(
            "pushed at commit {commit}{}; commit the edit when it is right",
            if report.rolled_out {
                ", rolled out"
            } else {
                " (rollout not followed: --no-wait, or the env runs another overlay)"
            }
        );
    }
}

pub fn gate_opened(report: &kindling::env::approve::GateReport) {
    match &report.commit {
        Some(commit) => println!(
            "gate of {} opened on env {}: pushed at {commit}, the engine reconciles it now",
            report.entry, report.env
        ),
        None => println!("gate of {} was open already", report.entry),
    }
}

pub fn applied_directly(report: &kindling::env::apply::ApplyReport) {
    println!(
        "{} applied directly to env {} ({} objects); the engine leaves it alone until `kindling env sync {}`",
        report.entry,
        report.env,
        report.applied.len(),
        report.env
    );
}

pub fn diff(report: &kindling::env::diff::DiffReport) {
    println!(
        "env {} against Git at {}:",
        report.env,
        kindling::env::steps::push::short(&report.commit)
    );
    for entry in &report.entries {
        if let Some(why) = &entry.not_compared {
            println!("{}: not compared: {why}", entry.entry);
            continue;
        }
        println!(
            "{}: {} unchanged, {} different",
            entry.entry,
            entry.unchanged,
            entry.changes.len()
        );
        for change in &entry.changes {
            println!("  {} {}", change.object, change.action.label());
            for line in &change.diff {
                println!("    {line}");
            }
        }
    }
    if !report.drifted {
        println!("nothing differs from Git");
    }
}

pub fn stopped(report: &PowerReport) {
    println!(
        "env {} stopped ({} containers); `kindling env start {}` brings it back",
        report.env,
        report.containers.len(),
        report.env
    );
}

pub fn started(report: &PowerReport) {
    println!(
        "env {} started ({} containers){}",
        report.env,
        report.containers.len(),
        report
            .route_repaired
            .as_ref()
            .map(|r| format!("; {r}"))
            .unwrap_or_default()
    );
}

pub fn approved(report: &ApproveReport) {
    if report.was_held {
        println!("env {} approved: the engine is reconciling", report.env);
    } else {
        println!("env {} was not held; reconciliation requested", report.env);
    }
}

pub fn deleted(report: &DeleteReport) {
    let name = &report.env;
    if report.nothing() {
        println!("env {name}: nothing to delete");
        if let Some(path) = &report.storage_kept {
            println!(
                "  its storage is kept in {}; `kindling env delete {name} --purge` removes it",
                path.display()
            );
        }
        return;
    }
    if !report.cluster_objects.is_empty() {
        println!(
            "env {name} deleted: {} objects it had applied to the cluster (the cluster stays){}",
            report.cluster_objects.len(),
            if report.state_removed { ", state" } else { "" }
        );
        if let Some(engine) = &report.engine_kept {
            println!("  {engine} kept: it was on the cluster before the env");
        }
        return;
    }
    println!(
        "env {name} deleted: {}{}{}",
        report
            .cluster
            .as_deref()
            .map(|c| format!("cluster {c}, "))
            .unwrap_or_default(),
        kindling::ui::objects(
            report.removed.containers.len(),
            report.removed.volumes.len(),
            report.removed.networks.len()
        ),
        if report.state_removed { ", state" } else { "" }
    );
    if let Some(path) = &report.storage_removed {
        println!("  storage removed: {}", path.display());
    }
    if let Some(path) = &report.storage_kept {
        println!(
            "  storage kept in {} for the next `env create {name}`; `kindling env delete {name} --purge` removes it",
            path.display()
        );
    }
}

pub fn cluster_envs(context: &str, envs: &[kindling::env::list::ClusterEnv]) {
    if envs.is_empty() {
        println!("no kindling envs on context {context}");
        return;
    }
    println!("{:<16} {:<10} FOUND", "NAME", "HERE");
    for e in envs {
        println!(
            "{:<16} {:<10} {}",
            e.name,
            if e.known_here { "yes" } else { "no" },
            e.found.join(", ")
        );
    }
}

pub fn list(entries: &[ListEntry]) {
    if entries.is_empty() {
        println!("no envs; `kindling env create dev --stamp sample` makes one");
        return;
    }
    println!(
        "{:<16} {:<28} {:<10} {:<6} {:<5} DOCKER OBJECTS",
        "NAME", "STATE", "STAMP", "PROV", "ENG"
    );
    for e in entries {
        println!(
            "{:<16} {:<28} {:<10} {:<6} {:<5} {}",
            e.name,
            e.state,
            e.stamp.as_deref().unwrap_or("-"),
            e.provider.as_deref().unwrap_or("-"),
            e.engine.as_deref().unwrap_or("-"),
            kindling::ui::objects(
                e.docker.containers.len(),
                e.docker.volumes.len(),
                e.docker.networks.len()
            )
        );
        if e.state == "orphaned" {
            println!("    delete with: kindling env delete {}", e.name);
        }
    }
}

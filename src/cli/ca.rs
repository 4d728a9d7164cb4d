//! `kindling ca show | export | trust | untrust`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use kindling::paths::data_dir;
use kindling::pki::trust::nss::{self, NssDatabases};
use kindling::pki::trust::{SystemCommandRunner, TrustStore, execute, trust_plan, untrust_plan};
use kindling::pki::{self, CaPair, LocalNames};
use serde_json::json;
use time::OffsetDateTime;

use super::Output;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Subject, fingerprint, expiry, constraints, where stored, trusted or not.
    Show,
    /// Print the root CA certificate (PEM), creating the CA on first use.
    Export {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add the root CA to this machine's trust store (says what it runs, and when that needs root).
    Trust {
        /// Print the commands without running them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove the root CA from this machine's trust store.
    Untrust {
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(command: CaCommand, output: Output) -> anyhow::Result<()> {
    let data = data_dir();
    let now = OffsetDateTime::now_utc();
    match command {
        CaCommand::Show => show(&data, now, output),
        CaCommand::Export { out } => {
            let root = pki::ensure_root(&data, &LocalNames::configured()?, now)?;
            match out {
                Some(path) => {
                    kindling::paths::write_atomic(&path, root.cert_pem.as_bytes(), 0o644)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    if output == Output::Json {
                        super::print_json(json!({ "written": path }));
                    } else {
                        eprintln!("wrote {}", path.display());
                    }
                }
                None if output == Output::Json => {
                    super::print_json(json!({ "certificate": root.cert_pem }));
                }
                None => print!("{}", root.cert_pem),
            }
            Ok(())
        }
        CaCommand::Trust { dry_run } => {
            // Read and checked (one kindling made) once, here.
            let root = pki::ensure_root(&data, &LocalNames::configured()?, now)?;
            let short_id = root.info()?.short_id();
            let store = TrustStore::detect();
            let home = home();
            let nss = NssDatabases::detect(&home);
            // With no system store to drive nothing asks for a password before certutil reads
            // the file, and the manual steps must name the file that stays.
            if dry_run || store == TrustStore::Unsupported {
                let plan = trust_plan(
                    store,
                    &root.cert_path,
                    &short_id,
                    running_as_root(),
                    &home,
                    &nss,
                );
                return apply(plan, dry_run, output);
            }
            // What is installed is exactly what was checked, copied before any password prompt.
            let (_staged, copy) = pki::trust::staged_copy(&root.cert_pem, &short_id)
                .map_err(|e| anyhow::anyhow!("cannot stage the root CA for trusting: {e}"))?;
            let plan = trust_plan(store, &copy, &short_id, running_as_root(), &home, &nss);
            apply(plan, false, output)
        }
        CaCommand::Untrust { dry_run } => {
            // Whatever root is there, kindling's or not: untrusting it is what the refusal of
            // a foreign root asks for.
            let Some(root) = pki::load_root_as_is(&data)? else {
                anyhow::bail!(
                    "there is no kindling root CA on this machine, so nothing to untrust"
                );
            };
            let short_id = root.info()?.short_id();
            let nss = NssDatabases::detect(&home()).holding(&nss::nickname(&short_id));
            let plan = untrust_plan(
                TrustStore::detect(),
                &root.cert_path,
                &short_id,
                running_as_root(),
                &nss,
            );
            apply(plan, dry_run, output)
        }
    }
}

fn apply(plan: pki::trust::TrustPlan, dry_run: bool, output: Output) -> anyhow::Result<()> {
    if dry_run {
        if output == Output::Json {
            super::print_json(json!({ "plan": plan, "ran": false }));
        } else {
            if let Some(steps) = &plan.manual_steps {
                println!("{steps}");
            }
            for c in &plan.commands {
                println!("{}", c.join(" "));
            }
            for warning in &plan.warnings {
                eprintln!("warning: {warning}");
            }
        }
        return Ok(());
    }
    execute(&plan, &mut SystemCommandRunner, &mut |text| {
        eprintln!("{text}")
    })?;
    if output == Output::Json {
        super::print_json(json!({ "plan": plan, "ran": true }));
    }
    Ok(())
}

fn show(data: &Path, now: OffsetDateTime, output: Output) -> anyhow::Result<()> {
    let Some(root) = pki::load_root(data, &LocalNames::configured()?)? else {
        let (cert, _) = pki::root_paths(data);
        if output == Output::Json {
            super::print_json(json!({ "exists": false, "certPath": cert }));
        } else {
            println!(
                "no kindling root CA on this machine yet; `kindling env create`, `ca export` or `ca trust` create it at {}",
                cert.display()
            );
        }
        return Ok(());
    };
    let info = root.info()?;
    let trusted = TrustStore::detect().is_trusted(&info.short_id());
    // The browsers' NSS databases (Linux): one `certutil -L` each.
    let nickname = nss::nickname(&info.short_id());
    let in_nss: Vec<(String, Option<bool>)> = NssDatabases::detect(&home())
        .found
        .iter()
        .map(|db| (db.spec(), nss::holds(db, &nickname)))
        .collect();
    let mut warnings = pki::expiry_warnings(now, &[("the root CA", &info)]);
    warnings.extend(pki::key_exposure(&root.key_path));
    if output == Output::Json {
        let nss_json: Vec<_> = in_nss
            .iter()
            .map(|(db, held)| json!({ "database": db, "trusted": held }))
            .collect();
        super::print_json(
            json!({ "exists": true, "certificate": info, "keyPath": root.key_path, "trusted": trusted, "nss": nss_json, "warnings": warnings }),
        );
        return Ok(());
    }
    print_info(&root, &info, trusted);
    for (db, held) in &in_nss {
        match held {
            Some(true) => println!("nss:          yes ({db})"),
            Some(false) => println!("nss:          no ({db}) — run `kindling ca trust`"),
            None => println!("nss:          unknown ({db}: no certutil, or it cannot read it)"),
        }
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn print_info(root: &CaPair, info: &pki::CertInfo, trusted: Option<bool>) {
    println!("subject:      {}", info.subject);
    println!("fingerprint:  SHA256 {}", info.fingerprint_sha256);
    println!(
        "valid:        {} to {}",
        info.not_before.date(),
        info.not_after.date()
    );
    println!(
        "constraints:  CA, path length {}, may sign only for {}",
        info.path_len.unwrap_or(0),
        info.permitted.join(", ")
    );
    println!("certificate:  {}", root.cert_path.display());
    println!(
        "key:          {} (never leaves this machine)",
        root.key_path.display()
    );
    println!(
        "trusted:      {}",
        match trusted {
            Some(true) => "yes (system trust store)",
            Some(false) => "no — run `kindling ca trust`",
            None => "unknown on this system",
        }
    );
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    false
}

fn home() -> PathBuf {
    directories::BaseDirs::new()
        .map(|d| d.home_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("~"))
}

//! The GitOps engines without a cluster: status parsing from recorded object shapes (validated
//! against the real CRDs), bootstrap objects validated against the CRDs, install-manifest
//! download/verify/cache against a local HTTP server, and install → bootstrap → reconcile →
//! status through the fake Kubernetes API.

mod common;

mod engine {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use kindling::engine::manifests::{self, LocalCopies, Origin, PinnedManifest};
    use kindling::engine::{self, Engine, GitCredentials, Readiness, argo, flux};
    use kindling::stamp::{self, Stamp};
    use serde_json::{Value, json};

    use super::common::kube_api::{FakeApi, builtin_controllers};
    use super::common::{SchemaSet, repo_dir, schemas_dir};

    fn sample() -> Stamp {
        stamp::load(&repo_dir().join("stamps/sample"), None).unwrap()
    }

    fn fixture(name: &str) -> Vec<Value> {
        let text =
            std::fs::read_to_string(repo_dir().join("tests/data/engine").join(name)).unwrap();
        kindling::kube::parse_bundle(&text).unwrap()
    }

    fn of_kind(objects: &[Value], kind: &str) -> Vec<Value> {
        objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect()
    }

    fn credentials() -> GitCredentials {
        GitCredentials {
            url: "http://kindling-dev-gitea:3000/kindling/source.git".into(),
            username: "kindling".into(),
            password: "0123456789abcdef0123456789abcdef01234567".into(),
        }
    }

    const COMMIT: &str = "3f0e6a3c7d2b1e4f5a6b7c8d9e0f1a2b3c4d5e6f";

    #[test]
    fn engine_status_fixtures_follow_the_crd_schemas() {
        let schemas = SchemaSet::load();
        for file in ["flux-blocked.yaml", "argo-progress.yaml"] {
            let objects = fixture(file);
            assert!(objects.len() >= 6, "{file}");
            for o in &objects {
                schemas
                    .validate(o)
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
            }
        }
    }

    #[test]
    fn engine_flux_status_reports_the_failing_entry_and_who_waits_for_it() {
        let objects = fixture("flux-blocked.yaml");
        let repo = of_kind(&objects, "GitRepository");
        let status = flux::status(
            &sample(),
            repo.first(),
            &of_kind(&objects, "Kustomization"),
            &of_kind(&objects, "HelmRelease"),
        );
        let row = |name: &str| status.entries.iter().find(|e| e.name == name).unwrap();
        // Dependency order, as the table prints it.
        let names: Vec<&str> = status.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), 6);
        assert!(
            names.iter().position(|n| *n == "certs")
                < names.iter().position(|n| *n == "certs-issuer")
        );
        assert!(
            names.iter().position(|n| *n == "database") < names.iter().position(|n| *n == "api")
        );

        assert_eq!(row("certs").readiness, Readiness::Ready);
        assert_eq!(
            row("certs").revision.as_deref(),
            Some("cert-manager@v1.21.1")
        );
        let ingress = row("ingress");
        assert_eq!(ingress.readiness, Readiness::Failed);
        assert_eq!(ingress.kind, "HelmRelease");
        assert_eq!(ingress.reason, "InstallFailed");
        assert!(ingress.message.contains("context deadline exceeded"));
        assert_eq!(row("database").readiness, Readiness::Progressing);
        assert_eq!(row("database").reason, "Progressing");
        assert_eq!(row("database").blocked_by, None);
        assert_eq!(row("api").readiness, Readiness::Progressing);
        assert_eq!(row("api").blocked_by.as_deref(), Some("ingress"));
        assert_eq!(row("website").blocked_by.as_deref(), Some("ingress"));
        assert_eq!(
            row("certs-issuer").revision.as_deref(),
            Some(format!("main@sha1:{COMMIT}").as_str())
        );
        // Where to look first: the failed chart, the first entry not merely waiting.
        assert_eq!(status.first_blocking().unwrap().name, "ingress");
        assert!(!status.all_ready());
        assert!(!status.awaiting_approval);
        let source = status.source.as_ref().unwrap();
        assert_eq!(source.readiness, Readiness::Ready);
        assert_eq!(
            source.revision.as_deref(),
            Some(format!("main@sha1:{COMMIT}").as_str())
        );
    }

    /// The blocked fixture with every object turned Ready at `commit`.
    fn all_ready(commit: &str) -> Vec<Value> {
        let mut objects = fixture("flux-blocked.yaml");
        for o in &mut objects {
            o["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                "message": format!("Applied revision: main@sha1:{commit}"), "lastTransitionTime": "2026-11-26T07:20:00Z"}]);
            if o["kind"] == "Kustomization" {
                o["status"]["lastAppliedRevision"] = json!(format!("main@sha1:{commit}"));
                o["status"]["observedGeneration"] = json!(1);
            }
            if o["kind"] == "GitRepository" {
                o["status"]["artifact"]["revision"] = json!(format!("main@sha1:{commit}"));
            }
        }
        objects
    }

    #[test]
    fn engine_flux_status_all_ready_and_reconciled_at_the_pushed_commit() {
        let schemas = SchemaSet::load();
        let objects = all_ready(COMMIT);
        objects.iter().for_each(|o| schemas.validate(o).unwrap());
        let status = flux::status(
            &sample(),
            of_kind(&objects, "GitRepository").first(),
            &of_kind(&objects, "Kustomization"),
            &of_kind(&objects, "HelmRelease"),
        );
        assert!(status.all_ready(), "{status:#?}");
        assert!(status.first_blocking().is_none());
        assert!(status.reconciled_at(COMMIT));
        assert!(!status.reconciled_at("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn engine_flux_suspended_root_is_awaiting_approval_and_missing_entries_show() {
        let mut objects = fixture("flux-blocked.yaml");
        objects.retain(|o| {
            o["kind"] != "HelmRelease"
                && (o["kind"] != "Kustomization" || o["metadata"]["name"] == "kindling-sample")
        });
        objects[1]["spec"]["suspend"] = json!(true);
        let status = flux::status(
            &sample(),
            objects.first(),
            &of_kind(&objects, "Kustomization"),
            &[],
        );
        assert!(status.awaiting_approval);
        assert!(!status.all_ready());
        assert!(
            status
                .entries
                .iter()
                .all(|e| e.readiness == Readiness::Missing)
        );
        // A missing entry whose dependencies are missing too waits for them.
        let api = status.entries.iter().find(|e| e.name == "api").unwrap();
        assert_eq!(api.blocked_by.as_deref(), Some("certs-issuer"));
    }

    #[test]
    fn engine_argo_status_from_sync_and_health() {
        let apps = fixture("argo-progress.yaml");
        let status = argo::status(&sample(), &apps);
        let row = |name: &str| status.entries.iter().find(|e| e.name == name).unwrap();
        assert_eq!(row("certs").readiness, Readiness::Ready);
        assert_eq!(row("certs").sync.as_deref(), Some("Synced"));
        assert_eq!(row("certs").health.as_deref(), Some("Healthy"));
        let ingress = row("ingress");
        assert_eq!(ingress.readiness, Readiness::Failed);
        assert_eq!(ingress.reason, "OutOfSync/Degraded");
        assert!(
            ingress.message.contains("exceeded its progress deadline"),
            "{ingress:?}"
        );
        assert_eq!(row("database").readiness, Readiness::Progressing);
        assert_eq!(row("database").message, "Waiting for 1 pods to be ready...");
        assert_eq!(row("database").revision.as_deref(), Some(COMMIT));
        assert_eq!(row("api").readiness, Readiness::Missing);
        assert_eq!(row("api").blocked_by.as_deref(), Some("ingress"));
        let website = row("website");
        assert_eq!(website.readiness, Readiness::Failed);
        assert_eq!(website.reason, "SyncError");
        assert!(website.message.contains("failed calling webhook"));
        assert_eq!(website.blocked_by.as_deref(), Some("ingress"));
        assert!(!status.awaiting_approval);
        assert_eq!(
            status.source.as_ref().unwrap().revision.as_deref(),
            Some(COMMIT)
        );
        assert!(!status.all_ready());
    }

    /// Issue #16, defect 4: an app that is Synced and Healthy is Ready even when its last
    /// operation failed (a sync that failed and was later healed, or whose retry another
    /// sync overtook): Argo CD's UI shows the failed operation beside a green app, and
    /// `argocd app wait` returns. kindling called it Failed, so `--wait` never returned. A
    /// failed operation still fails an app that is not Synced and Healthy, in its own words.
    #[test]
    fn engine_argo_synced_healthy_app_with_an_old_failed_operation_is_ready() {
        let app = |sync: &str, health: &str, phase: &str| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": "api", "namespace": "argocd"},
                "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"}},
                // The shape Argo CD v3.5.1 leaves after a failed automated sync
                // (controller/appcontroller.go: SyncError condition, operationState).
                "status": {"sync": {"status": sync, "revision": COMMIT}, "health": {"status": health},
                    "conditions": [{"type": "SyncError", "message": format!("Failed last sync attempt to [{COMMIT}]: one or more objects failed to apply, reason: Internal error occurred: failed calling webhook \"webhook.cert-manager.io\""), "lastTransitionTime": "2026-11-29T08:00:00Z"}],
                    "operationState": {"phase": phase, "message": "one or more objects failed to apply, reason: Internal error occurred: failed calling webhook \"webhook.cert-manager.io\" (retried 5 times).",
                        "operation": {"sync": {"revision": COMMIT}}, "syncResult": {"revision": COMMIT},
                        "startedAt": "2026-11-29T08:00:00Z", "finishedAt": "2026-11-29T08:03:00Z"}}})
        };
        let schemas = SchemaSet::load();
        for phase in ["Failed", "Error"] {
            let healed = app("Synced", "Healthy", phase);
            schemas.validate(&healed).unwrap();
            let entry = argo::entry_status("api", std::slice::from_ref(&healed));
            assert_eq!(entry.readiness, Readiness::Ready, "{phase}: {entry:?}");
            assert_eq!(entry.message, "");
            let stuck = app("OutOfSync", "Missing", phase);
            let entry = argo::entry_status("api", std::slice::from_ref(&stuck));
            assert_eq!(entry.readiness, Readiness::Failed, "{entry:?}");
            assert_eq!(entry.reason, format!("Sync{phase}"));
            assert!(entry.message.contains("(retried 5 times)"), "{entry:?}");
        }
        // Still syncing (a retry is waiting): progress, not failure.
        let retrying = app("OutOfSync", "Missing", "Running");
        let entry = argo::entry_status("api", std::slice::from_ref(&retrying));
        assert_ne!(entry.readiness, Readiness::Ready);
    }

    #[test]
    fn engine_argo_root_without_automated_sync_is_awaiting_approval() {
        let mut apps = fixture("argo-progress.yaml");
        apps[0]["spec"]["syncPolicy"] = json!({});
        let status = argo::status(&sample(), &apps);
        assert!(status.awaiting_approval);
        assert!(!status.all_ready());
    }

    fn rendered_bootstrap(engine: Engine) -> Vec<Value> {
        let opts =
            kindling::stamp::render::RenderOptions::standard(kindling::gitea::service_repo_url());
        let rendered = kindling::stamp::render::render(&sample(), engine, &opts).unwrap();
        rendered.files[0].documents.clone()
    }

    #[test]
    fn engine_bootstrap_objects_follow_the_crd_schemas() {
        let schemas = SchemaSet::load();
        let stamp = sample();
        for engine in [Engine::Flux, Engine::Argo] {
            for hold in [false, true] {
                let objects = engine::bootstrap_objects(
                    engine,
                    &stamp,
                    &rendered_bootstrap(engine),
                    &credentials(),
                    hold,
                );
                assert!(objects.len() >= 3);
                for o in &objects {
                    schemas
                        .validate(o)
                        .unwrap_or_else(|e| panic!("{engine:?} hold={hold}: {e}"));
                }
                let secret = &objects[0];
                assert_eq!(secret["kind"], "Secret");
                assert_eq!(secret["metadata"]["namespace"], engine::namespace(engine));
                let text = serde_json::to_string(&objects).unwrap();
                assert!(
                    !text.contains(&credentials().password),
                    "token only base64-encoded in data"
                );
                match engine {
                    Engine::Flux => {
                        let root = objects
                            .iter()
                            .find(|o| o["metadata"]["name"] == "kindling-sample")
                            .unwrap();
                        assert_eq!(root["spec"]["suspend"], json!(hold));
                        let repo = objects
                            .iter()
                            .find(|o| o["kind"] == "GitRepository")
                            .unwrap();
                        assert_eq!(
                            repo["spec"]["secretRef"]["name"],
                            secret["metadata"]["name"]
                        );
                        assert!(
                            repo["spec"]["ignore"]
                                .as_str()
                                .unwrap()
                                .contains("!/stamps/sample/")
                        );
                    }
                    Engine::Argo => {
                        assert_eq!(
                            secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
                            "repository"
                        );
                        let root = objects.iter().find(|o| o["kind"] == "Application").unwrap();
                        assert_eq!(root["spec"]["syncPolicy"]["automated"].is_object(), !hold);
                        assert_eq!(
                            root["metadata"]["annotations"][argo::HOLD_ANNOTATION],
                            hold.to_string()
                        );
                        assert!(
                            objects.iter().any(|o| o["kind"] == "ConfigMap"
                                && o["metadata"]["name"] == "argocd-cm")
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn engine_reconcile_requests_cover_source_root_and_entries_in_order() {
        let stamp = sample();
        let now = time::macros::datetime!(2026-11-26 08:00:00 UTC);
        let requests = flux::reconcile_requests(&stamp, now);
        let targets: Vec<String> = requests
            .iter()
            .map(|r| format!("{}/{}", r.kind, r.name))
            .collect();
        assert_eq!(targets[0], "GitRepository/kindling");
        assert_eq!(targets[1], "Kustomization/kindling-sample");
        assert!(targets.contains(&"HelmRelease/certs".to_string()));
        assert!(
            !targets.contains(&"HelmRelease/database".to_string()),
            "database is a path entry"
        );
        // Source, root, six entries with their `.health` Kustomizations, two HelmReleases.
        assert_eq!(targets.len(), 2 + 6 + 6 + 2);
        assert!(targets.contains(&"Kustomization/api.health".to_string()));
        for r in &requests {
            assert_eq!(
                r.patch["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
                "2026-11-26T08:00:00Z"
            );
        }
        // Argo CD: refreshes; a sync operation only for a root that is neither automated nor held.
        let apps = fixture("argo-progress.yaml");
        let automated = argo::reconcile_requests(&stamp, apps.first());
        assert_eq!(automated.len(), 1 + 6);
        assert!(automated.iter().all(|r| r.patch == argo::refresh_patch()));
        let mut manual = apps[0].clone();
        manual["spec"]["syncPolicy"] = json!({});
        let with_sync = argo::reconcile_requests(&stamp, Some(&manual));
        assert_eq!(with_sync[1].patch, argo::sync_operation_patch("main"));
        manual["metadata"]["annotations"] = json!({argo::HOLD_ANNOTATION: "true"});
        let held = argo::reconcile_requests(&stamp, Some(&manual));
        assert!(
            held.iter().all(|r| r.patch["operation"].is_null()),
            "a held root is never synced"
        );
        // The sync operation is a valid Application change.
        let schemas = SchemaSet::load();
        let mut patched = apps[0].clone();
        super::common::kube_api::merge(&mut patched, &argo::sync_operation_patch("main"));
        schemas.validate(&patched).unwrap();
    }

    /// Serves `body` at every path; counts requests.
    fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/install.yaml", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        (url, hits)
    }

    /// The cache in `cache`, the first-use records in a directory of their own beside it (the
    /// data dir, in kindling).
    fn dirs(cache: &tempfile::TempDir) -> manifests::ManifestDirs {
        manifests::ManifestDirs {
            cache: cache.path().to_path_buf(),
            records: cache.path().join("data/manifest-sums"),
        }
    }

    const MANIFEST: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n";

    fn pinned(url: &str, sha256: Option<String>) -> PinnedManifest {
        PinnedManifest {
            name: Engine::Flux.name(),
            version: "v0.0.0-test".into(),
            url: url.into(),
            sha256,
        }
    }

    #[test]
    fn engine_manifest_download_is_verified_cached_and_reused_offline() {
        let cache = tempfile::tempdir().unwrap();
        let dirs = dirs(&cache);
        let (url, hits) = serve(MANIFEST.as_bytes().to_vec());
        let sum = kindling::cluster::tools::sha256_hex(MANIFEST.as_bytes());
        let m = pinned(&url, Some(sum.clone()));
        let first = manifests::fetch(&m, &dirs, None).unwrap();
        assert_eq!(first.origin, Origin::Downloaded);
        assert_eq!(first.text, MANIFEST);
        assert_eq!(first.sha256, sum);
        assert!(first.note.is_none());
        // Offline: the URL now points nowhere, the cache answers.
        let offline = pinned("http://127.0.0.1:9/install.yaml", Some(sum.clone()));
        let second = manifests::fetch(&offline, &dirs, None).unwrap();
        assert_eq!(second.origin, Origin::Cached);
        assert_eq!(second.text, MANIFEST);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A damaged cache is not used: it is downloaded again and verified.
        std::fs::write(&first.path, "tampered").unwrap();
        let third = manifests::fetch(&m, &dirs, None).unwrap();
        assert_eq!(third.origin, Origin::Downloaded);
        assert_eq!(std::fs::read_to_string(&first.path).unwrap(), MANIFEST);
    }

    #[test]
    fn engine_manifest_mismatch_names_both_sums_and_caches_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let dirs = dirs(&cache);
        let (url, _) = serve(b"something else\n".to_vec());
        let expected = kindling::cluster::tools::sha256_hex(MANIFEST.as_bytes());
        let err = manifests::fetch(&pinned(&url, Some(expected.clone())), &dirs, None)
            .unwrap_err()
            .to_string();
        let actual = kindling::cluster::tools::sha256_hex(b"something else\n");
        assert!(
            err.contains(&format!("expected sha256 {expected}")),
            "{err}"
        );
        assert!(err.contains(&format!("got      sha256 {actual}")), "{err}");
        let cached: Vec<_> = walk(cache.path());
        assert!(cached.is_empty(), "{cached:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn engine_manifest_without_a_pinned_sum_is_recorded_then_enforced() {
        let cache = tempfile::tempdir().unwrap();
        let dirs = dirs(&cache);
        let (url, _) = serve(MANIFEST.as_bytes().to_vec());
        let first = manifests::fetch(&pinned(&url, None), &dirs, None).unwrap();
        assert_eq!(first.origin, Origin::Downloaded);
        assert!(
            first.note.as_deref().unwrap().contains("recorded"),
            "{:?}",
            first.note
        );
        let again = manifests::fetch(&pinned(&url, None), &dirs, None).unwrap();
        assert_eq!(again.origin, Origin::Cached);
        // The record is in the data dir (0600), not beside the cached file: whoever can write
        // the cache cannot swap the file and its record together (issue #17, item 11).
        let record = dirs.records.join("flux-v0.0.0-test-install.yaml.sha256");
        assert_eq!(
            std::fs::read_to_string(&record).unwrap().trim(),
            first.sha256
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&record).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            walk(&cache.path().join("manifests"))
                .iter()
                .all(|p| !p.to_string_lossy().ends_with(".sha256"))
        );
        let forged = b"kind: Forged\n";
        std::fs::write(&first.path, forged).unwrap();
        std::fs::write(
            first.path.with_extension("yaml.sha256"),
            kindling::cluster::tools::sha256_hex(forged),
        )
        .unwrap();
        let after_forgery = manifests::fetch(&pinned(&url, None), &dirs, None).unwrap();
        assert_eq!(
            after_forgery.text, MANIFEST,
            "the forged cache copy was used"
        );
        // The upstream file changes under the same version: refused.
        std::fs::remove_file(&first.path).unwrap();
        let (changed, _) = serve(b"kind: Changed\n".to_vec());
        let err = manifests::fetch(&pinned(&changed, None), &dirs, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("expected sha256 {}", first.sha256)),
            "{err}"
        );
    }

    #[test]
    fn engine_manifests_dir_is_used_as_is_and_verified() {
        let cache = tempfile::tempdir().unwrap();
        let dirs = dirs(&cache);
        let local = tempfile::tempdir().unwrap();
        let sum = kindling::cluster::tools::sha256_hex(MANIFEST.as_bytes());
        let m = pinned("http://127.0.0.1:9/never", Some(sum));
        std::fs::write(local.path().join(m.file_name()), MANIFEST).unwrap();
        let copies = |dir, modified| {
            Some(LocalCopies {
                dir,
                modified,
                trusted: false,
            })
        };
        let fetched = manifests::fetch(&m, &dirs, copies(local.path(), false)).unwrap();
        assert_eq!(fetched.origin, Origin::Local);
        assert!(fetched.note.is_none());
        std::fs::write(local.path().join(m.file_name()), "other").unwrap();
        let err = manifests::fetch(&m, &dirs, copies(local.path(), false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("KINDLING_MANIFESTS_MODIFIED=1"), "{err}");
        // A copy changed on purpose is used when the user says so, and said on every use.
        let modified = manifests::fetch(&m, &dirs, copies(local.path(), true)).unwrap();
        assert_eq!(modified.text, "other");
        let note = modified.note.unwrap();
        assert!(
            note.contains("modified copy")
                && note.contains(&kindling::cluster::tools::sha256_hex(b"other")),
            "{note}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = manifests::fetch(&m, &dirs, copies(empty.path(), false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--manifests-dir") && err.contains(&m.file_name()),
            "{err}"
        );
    }

    /// Issue #17, item 11: a `--manifests-dir` copy that no pinned or recorded sum vouches for
    /// is refused, naming its sum and the way out; `--trust-manifests` lets it through, said.
    #[test]
    fn engine_manifests_dir_without_any_sum_is_refused_unless_trusted() {
        let cache = tempfile::tempdir().unwrap();
        let dirs = dirs(&cache);
        let local = tempfile::tempdir().unwrap();
        let m = pinned("http://127.0.0.1:9/never", None);
        std::fs::write(local.path().join(m.file_name()), MANIFEST).unwrap();
        let copies = |trusted| {
            Some(LocalCopies {
                dir: local.path(),
                modified: false,
                trusted,
            })
        };
        let err = manifests::fetch(&m, &dirs, copies(false))
            .unwrap_err()
            .to_string();
        let sum = kindling::cluster::tools::sha256_hex(MANIFEST.as_bytes());
        assert!(
            err.contains("no pinned sha256") && err.contains(&sum),
            "{err}"
        );
        assert!(err.contains("--trust-manifests"), "{err}");
        let trusted = manifests::fetch(&m, &dirs, copies(true)).unwrap();
        assert_eq!(trusted.text, MANIFEST);
        assert!(trusted.note.unwrap().contains("--trust-manifests"));
    }

    fn crd(file: &str) -> String {
        std::fs::read_to_string(schemas_dir().join(file)).unwrap()
    }

    /// A small install manifest shaped like Flux's: its Namespace, real CRDs, a controller.
    fn flux_install() -> String {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: flux-system}}\n---\n{}\n---\n{}\n---\n{}\n---\n{}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: source-controller, namespace: flux-system}}\nspec: {{selector: {{matchLabels: {{app: source-controller}}}}, template: {{metadata: {{labels: {{app: source-controller}}}}, spec: {{containers: [{{name: manager, image: ghcr.io/fluxcd/source-controller:v1.7.4}}]}}}}}}\n",
            crd("flux-source.toolkit.fluxcd.io_gitrepositories.yaml"),
            crd("flux-source.toolkit.fluxcd.io_helmrepositories.yaml"),
            crd("flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
            crd("flux-helm.toolkit.fluxcd.io_helmreleases.yaml"),
        )
    }

    /// The user's proxy reaches the engine's controllers (they fetch charts and OCI artifacts),
    /// with the cluster's ranges and the env's services kept direct; what the manifest sets
    /// itself stays; without a proxy nothing changes.
    #[test]
    fn engine_install_objects_carry_the_proxy_to_every_controller() {
        let mut objects = engine::install_objects(Engine::Flux, &flux_install()).unwrap();
        let before = objects.clone();
        engine::with_proxy(&mut objects, &[]);
        assert_eq!(objects, before);
        objects[5]["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "NO_PROXY", "value": "set-by-upstream"}]);
        let proxy = kindling::cluster::proxy::ProxySettings::from_lookup(|k| {
            (k == "HTTPS_PROXY").then(|| "http://proxy.corp:3128".to_string())
        });
        let vars = proxy.variables(&kindling::cluster::proxy::pod_direct_names(
            kindling::cluster::Provider::Kind,
            "dev",
        ));
        engine::with_proxy(&mut objects, &vars);
        let env = &objects[5]["spec"]["template"]["spec"]["containers"][0]["env"];
        let value = |name: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].as_str().unwrap().to_string())
        };
        assert_eq!(objects[5]["kind"], "Deployment");
        assert_eq!(
            value("HTTPS_PROXY").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(value("NO_PROXY").as_deref(), Some("set-by-upstream"));
        let no_proxy = value("no_proxy").unwrap();
        for direct in [
            "10.96.0.0/16",
            "10.244.0.0/16",
            ".svc.cluster.local",
            "kindling-dev-gitea",
        ] {
            assert!(no_proxy.contains(direct), "{direct}: {no_proxy}");
        }
        // Only workloads change.
        assert_eq!(objects[0], before[0]);
    }

    #[tokio::test]
    async fn engine_flux_install_bootstrap_reconcile_and_status_through_the_api() {
        let api = FakeApi::start(Some(Box::new(builtin_controllers)));
        let kube = api.client().await;
        let applied = engine::install(
            &kube,
            Engine::Flux,
            &flux_install(),
            &[],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(applied, 6);
        let install_patches: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect();
        assert!(
            install_patches
                .iter()
                .all(|r| r.query.contains("fieldManager=kindling-install"))
        );
        // Deployments were read to judge readiness.
        assert!(
            api.requests().iter().any(|r| r.method == "GET"
                && r.path == "/apis/apps/v1/namespaces/flux-system/deployments")
        );

        let stamp = sample();
        let objects = engine::bootstrap_objects(
            Engine::Flux,
            &stamp,
            &rendered_bootstrap(Engine::Flux),
            &credentials(),
            false,
        );
        kube.apply_objects(
            &objects,
            &kindling::kube::ApplyOptions::new(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        assert!(api.object("GitRepository", "kindling").is_some());
        assert!(api.object("Secret", "kindling-git-credentials").is_some());

        // Entries do not exist yet: only the source and the root are asked to reconcile.
        let now = time::macros::datetime!(2026-11-26 08:00:00 UTC);
        let patched = engine::request_reconcile(&kube, Engine::Flux, &stamp, now)
            .await
            .unwrap();
        assert_eq!(
            patched,
            ["GitRepository kindling", "Kustomization kindling-sample"]
        );
        let merges: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.content_type == "application/merge-patch+json")
            .collect();
        assert_eq!(merges.len(), 2);
        let repo = api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            repo["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
            "2026-11-26T08:00:00Z"
        );

        // The controllers reconcile: the recorded objects appear with their status.
        let recorded = fixture("flux-blocked.yaml");
        api.update(|stored| {
            for o in recorded.iter().filter(|o| {
                o["kind"] != "GitRepository" && o["metadata"]["name"] != "kindling-sample"
            }) {
                let plural = match o["kind"].as_str().unwrap() {
                    "Kustomization" => "kustomizations",
                    _ => "helmreleases",
                };
                stored.push(super::common::kube_api::Stored {
                    group_version: o["apiVersion"].as_str().unwrap().into(),
                    plural: plural.into(),
                    namespace: Some("flux-system".into()),
                    name: o["metadata"]["name"].as_str().unwrap().into(),
                    object: o.clone(),
                });
            }
        });
        let status = engine::status(&kube, Engine::Flux, &stamp).await.unwrap();
        let ingress = status.entries.iter().find(|e| e.name == "ingress").unwrap();
        assert_eq!(ingress.readiness, Readiness::Failed);
        assert_eq!(
            status
                .entries
                .iter()
                .filter(|e| e.readiness == Readiness::Ready)
                .count(),
            2
        );
        // Now every entry exists and is asked too.
        let patched = engine::request_reconcile(&kube, Engine::Flux, &stamp, now)
            .await
            .unwrap();
        assert_eq!(patched.len(), 2 + 6 + 6 + 2);
    }

    #[tokio::test]
    async fn engine_argo_install_goes_into_its_namespace_and_approve_syncs_the_root() {
        let api = FakeApi::start(Some(Box::new(builtin_controllers)));
        let kube = api.client().await;
        // Like Argo CD's install.yaml: no Namespace, namespaced objects without a namespace.
        let install = format!(
            "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm, labels: {{app.kubernetes.io/part-of: argocd}}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: argocd-server}}\nrules: []\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: argocd-server}}\nspec: {{}}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: argocd-application-controller}}\nspec: {{replicas: 1}}\n",
            crd("argocd-application-crd.yaml")
        );
        engine::install(
            &kube,
            Engine::Argo,
            &install,
            &[],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let paths: Vec<String> = api
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.path)
            .collect();
        assert!(
            paths.contains(&"/api/v1/namespaces/argocd".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"/api/v1/namespaces/argocd/configmaps/argocd-cm".to_string()));
        assert!(
            paths.contains(
                &"/apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller"
                    .to_string()
            )
        );
        assert!(paths.contains(
            &"/apis/rbac.authorization.k8s.io/v1/clusterroles/argocd-server".to_string()
        ));
        let role = api.object("ClusterRole", "argocd-server").unwrap();
        assert!(
            role["metadata"]["namespace"].is_null(),
            "cluster-scoped objects get no namespace"
        );

        let stamp = sample();
        let held = engine::bootstrap_objects(
            Engine::Argo,
            &stamp,
            &rendered_bootstrap(Engine::Argo),
            &credentials(),
            true,
        );
        kube.apply_objects(
            &held,
            &kindling::kube::ApplyOptions::new(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        let status = engine::status(&kube, Engine::Argo, &stamp).await.unwrap();
        assert!(status.awaiting_approval);
        // The bootstrap argocd-cm keys live beside the install's: separate field managers.
        let cm = api.object("ConfigMap", "argocd-cm").unwrap();
        assert!(
            cm["data"].as_object().is_some_and(|d| !d.is_empty()),
            "{cm}"
        );

        let approved = engine::bootstrap_objects(
            Engine::Argo,
            &stamp,
            &rendered_bootstrap(Engine::Argo),
            &credentials(),
            false,
        );
        let now = time::macros::datetime!(2026-11-26 08:00:00 UTC);
        let patched = engine::approve(&kube, Engine::Argo, &stamp, &approved, "main", now)
            .await
            .unwrap();
        assert_eq!(patched[0], "Application kindling-sample (sync)");
        let root = api.object("Application", "kindling-sample").unwrap();
        assert!(root["spec"]["syncPolicy"]["automated"].is_object());
        assert_eq!(root["operation"]["sync"]["revision"], "main");
        assert_eq!(
            root["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
            "normal"
        );
        let status = engine::status(&kube, Engine::Argo, &stamp).await.unwrap();
        assert!(!status.awaiting_approval);
    }

    #[tokio::test]
    async fn engine_install_wait_names_the_stuck_workload_and_its_latest_warning() {
        // No controller: the Deployment never becomes Available.
        let api = FakeApi::start(Some(Box::new(
            |objects: &mut Vec<super::common::kube_api::Stored>| {
                for s in objects.iter_mut() {
                    if s.object["kind"] == "CustomResourceDefinition" {
                        s.object["status"] =
                            json!({"conditions": [{"type": "Established", "status": "True"}]});
                    }
                    if s.object["kind"] == "Deployment" {
                        s.object["status"] = json!({"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]});
                    }
                }
            },
        )));
        api.update(|stored| {
            for (name, reason, message, at) in [
                ("source-controller-7d9f8b6c5-x2x7q", "Failed", "Failed to pull image \"ghcr.io/fluxcd/source-controller:v1.7.4\": not found", "2026-11-26T07:00:05Z"),
                ("source-controller-7d9f8b6c5-x2x7q", "BackOff", "Back-off pulling image \"ghcr.io/fluxcd/source-controller:v1.7.4\"", "2026-11-26T07:00:40Z"),
                ("other-pod", "BackOff", "unrelated", "2026-11-26T07:01:00Z"),
            ] {
                stored.push(super::common::kube_api::Stored {
                    group_version: "v1".into(),
                    plural: "events".into(),
                    namespace: Some("flux-system".into()),
                    name: format!("{name}.{reason}"),
                    object: json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": format!("{name}.{reason}"), "namespace": "flux-system"},
                        "type": "Warning", "reason": reason, "message": message, "lastTimestamp": at,
                        "involvedObject": {"kind": "Pod", "name": name, "namespace": "flux-system"}}),
                });
            }
        });
        let kube = api.client().await;
        let err = engine::install(
            &kube,
            Engine::Flux,
            &flux_install(),
            &[],
            &[],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("Deployment source-controller is not Available"),
            "{err}"
        );
        assert!(err.contains("BackOff: Back-off pulling image"), "{err}");
        assert!(!err.contains("unrelated"), "{err}");
    }

    #[tokio::test]
    async fn engine_wait_for_a_named_condition_reports_it_and_the_latest_warning() {
        let api = FakeApi::start(Some(Box::new(builtin_controllers)));
        let kube = api.client().await;
        kube.apply_objects(
            &kindling::kube::parse_bundle(&flux_install()).unwrap(),
            &kindling::kube::ApplyOptions::new(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        let mut objects = fixture("flux-blocked.yaml");
        objects.retain(|o| o["metadata"]["name"] == "ingress" && o["kind"] == "HelmRelease");
        let release = objects.remove(0);
        api.update(|stored| {
            stored.push(super::common::kube_api::Stored {
                group_version: "helm.toolkit.fluxcd.io/v2".into(),
                plural: "helmreleases".into(),
                namespace: Some("flux-system".into()),
                name: "ingress".into(),
                object: release,
            });
            stored.push(super::common::kube_api::Stored {
                group_version: "v1".into(),
                plural: "events".into(),
                namespace: Some("flux-system".into()),
                name: "ingress.1".into(),
                object: json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ingress.1", "namespace": "flux-system"},
                    "type": "Warning", "reason": "InstallFailed", "message": "Helm install failed: context deadline exceeded",
                    "lastTimestamp": "2026-11-26T07:06:10Z", "involvedObject": {"kind": "HelmRelease", "name": "ingress"}}),
            });
        });
        let err = kube
            .wait_condition(
                "helm.toolkit.fluxcd.io/v2",
                "HelmRelease",
                Some("flux-system"),
                "ingress",
                "Ready",
                Duration::from_millis(600),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("HelmRelease ingress to be Ready"), "{err}");
        assert!(err.contains("Ready=False: Helm install failed"), "{err}");
        assert!(
            err.contains("latest warning: ingress InstallFailed"),
            "{err}"
        );
        // The same wait succeeds once the condition turns True.
        api.update(|stored| {
            for s in stored
                .iter_mut()
                .filter(|s| s.name == "ingress" && s.plural == "helmreleases")
            {
                s.object["status"]["conditions"][0]["status"] = json!("True");
            }
        });
        kube.wait_condition(
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
            Some("flux-system"),
            "ingress",
            "Ready",
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    }

    #[test]
    fn engine_manifests_command_verifies_local_copies_and_copies_them_for_air_gapped_hosts() {
        let cache = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let manifests_command = |engine: &str, dir: &std::path::Path, modified: bool| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
            command
                .args([
                    "engine",
                    "manifests",
                    "--engine",
                    engine,
                    "--output",
                    "json",
                ])
                .arg("--manifests-dir")
                .arg(dir)
                .arg("--out")
                .arg(out.path())
                .env("KINDLING_CACHE_DIR", cache.path())
                .env_remove("KINDLING_MANIFESTS_DIR")
                .env_remove("KINDLING_MANIFESTS_MODIFIED");
            if modified {
                command.env("KINDLING_MANIFESTS_MODIFIED", "1");
            }
            command.output().unwrap()
        };

        // The release's own file (argoproj/argo-cd v3.5.1 manifests/install.yaml, the bytes
        // raw.githubusercontent.com serves) matches the pinned sum and is copied out.
        let argo = manifests::pinned(Engine::Argo);
        let release = std::fs::read(
            repo_dir().join("tests/fixtures/upstream/manifests/argo-v3.5.1-install.yaml"),
        )
        .unwrap();
        std::fs::write(local.path().join(argo.file_name()), &release).unwrap();
        let run = manifests_command("argo", local.path(), false);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let doc: Value = serde_json::from_slice(&run.stdout).unwrap();
        let row = &doc["manifests"][0];
        assert_eq!(row["sha256"], argo.sha256.as_deref().unwrap());
        assert_eq!(row["pinned"], true);
        assert_eq!(row["origin"], "local");
        assert_eq!(
            std::fs::read(out.path().join(argo.file_name())).unwrap(),
            release
        );

        // Anything else is refused, naming both sums, and nothing is copied out.
        let flux = manifests::pinned(Engine::Flux);
        std::fs::write(local.path().join(flux.file_name()), MANIFEST).unwrap();
        let refused = manifests_command("flux", local.path(), false);
        assert_eq!(refused.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let sum = kindling::cluster::tools::sha256_hex(MANIFEST.as_bytes());
        assert!(
            stderr.contains(flux.sha256.as_deref().unwrap()) && stderr.contains(&sum),
            "{stderr}"
        );
        assert!(!out.path().join(flux.file_name()).exists());

        // Unless the user says the copy was changed on purpose: then it is used, and said.
        let modified = manifests_command("flux", local.path(), true);
        assert!(modified.status.success());
        let doc: Value = serde_json::from_slice(&modified.stdout).unwrap();
        assert_eq!(doc["manifests"][0]["sha256"], sum.as_str());
        assert!(String::from_utf8_lossy(&modified.stderr).contains("modified copy"));
        assert_eq!(
            std::fs::read_to_string(out.path().join(flux.file_name())).unwrap(),
            MANIFEST
        );

        // KINDLING_CACHE_DIR: with no --manifests-dir the binary looks in its cache dir
        // (`manifests/` below it) and uses a verified copy there without any download.
        let cached = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(cached.path().join("manifests")).unwrap();
        std::fs::write(
            cached.path().join("manifests").join(argo.file_name()),
            &release,
        )
        .unwrap();
        let offline = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args([
                "engine",
                "manifests",
                "--engine",
                "argo",
                "--output",
                "json",
            ])
            .env("KINDLING_CACHE_DIR", cached.path())
            .env_remove("KINDLING_MANIFESTS_DIR")
            .env_remove("KINDLING_MANIFESTS_MODIFIED")
            // Any download attempt would fail: no proxy answers here.
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .output()
            .unwrap();
        assert!(
            offline.status.success(),
            "{}",
            String::from_utf8_lossy(&offline.stderr)
        );
        let doc: Value = serde_json::from_slice(&offline.stdout).unwrap();
        assert_eq!(doc["manifests"][0]["origin"], "cached", "{doc}");

        // A missing copy is a clear error.
        let empty = tempfile::tempdir().unwrap();
        let failed = manifests_command("argo", empty.path(), false);
        assert_eq!(failed.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&failed.stderr).contains("argo-v3.5.1-install.yaml"));
    }
}

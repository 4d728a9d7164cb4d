//! A cluster kindling did not make (issue #22 part 1): `env create --provider existing
//! --context NAME --kubeconfig FILE` against the fake API server of a "team" cluster. No
//! Docker cluster is made; the rights are asked for by SelfSubjectAccessReview first; Gitea
//! runs in the cluster and is pushed to through a port-forward the fake API serves as the
//! kubelet does (tests/common/fake_pods.rs); an engine already there is used as it is; and
//! `env delete` leaves everything the env did not label as it was.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::unique;
    use serde_json::{Value, json};

    const ENV_LABEL: &str = "dev.kindling.env";

    /// What a team had on the cluster before kindling came: a namespace with a ConfigMap,
    /// and a Secret in `default`.
    fn plant_team_objects(h: &Harness) -> Vec<Value> {
        let planted = vec![
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team-a", "labels": {"team": "a"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "keep-me", "namespace": "team-a"}, "data": {"a": "1"}}),
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "team-token", "namespace": "default"}, "data": {"t": "eA=="}}),
        ];
        plant(&h.api, planted.clone());
        planted
    }

    fn find(h: &Harness, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        h.api
            .objects_of(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"].as_str() == ns)
    }

    /// Each of `planted` is on the cluster as it was planted: there, not being deleted, its
    /// data the same, no env label.
    fn assert_untouched(h: &Harness, planted: &[Value]) {
        for o in planted {
            let live = find(
                h,
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str(),
                o["metadata"]["name"].as_str().unwrap(),
            )
            .unwrap_or_else(|| panic!("the team's object went: {o}"));
            assert_eq!(live["data"], o["data"], "{live}");
            assert!(live["metadata"]["deletionTimestamp"].is_null(), "{live}");
            assert!(live["metadata"]["labels"][ENV_LABEL].is_null(), "{live}");
        }
    }

    fn labelled(h: &Harness, env: &str) -> Vec<String> {
        h.api
            .state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|s| s.object["metadata"]["labels"][ENV_LABEL] == env)
            .map(|s| format!("{} {:?}/{}", s.plural, s.namespace, s.name))
            .collect()
    }

    /// `env list --provider existing --context team --output json`.
    fn list_team(h: &Harness) -> std::process::Output {
        h.run_on_team(&["env", "list"], &[])
    }

    fn existing(h: &Harness, env: &str, more: &[&str]) -> Value {
        ok(&h.create_existing(env, more))
    }

    fn status(h: &Harness, env: &str) -> Value {
        h.json(&["env", "status", env])
    }

    /// The root Kustomization of the sample in env `env`'s own namespace.
    fn sample_root(h: &Harness, env: &str) -> Option<Value> {
        find(
            h,
            "Kustomization",
            Some(&format!("kindling-{env}")),
            "kindling-sample",
        )
    }

    /// Whether env `env` wrote anything (a server-side apply is a PATCH).
    fn wrote_anything(h: &Harness, env: &str) -> bool {
        h.api
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains(env))
    }

    /// Runs the found Flux's kustomize-controller with `args`.
    fn set_kustomize_controller_args(h: &Harness, args: Value) {
        h.api.update(|stored| {
            let controller = stored
                .iter_mut()
                .find(|s| s.plural == "deployments" && s.name == "kustomize-controller")
                .expect("the found Flux's kustomize-controller");
            controller.object["spec"]["template"]["spec"]["containers"][0]["args"] = args.clone();
        });
    }

    /// `env delete ENV`, then `wait_all_gone`.
    fn delete_and_wait_gone(h: &Harness, env: &str) {
        h.json(&["env", "delete", env]);
        wait_all_gone(h, env);
    }

    /// Waits until nothing the env labelled is left (a deleted Namespace terminates first,
    /// its content going with it, as the namespace controller does).
    fn wait_all_gone(h: &Harness, env: &str) {
        wait_until(
            "every object labelled for the env to go",
            std::time::Duration::from_secs(20),
            || {
                // A request lets the fake's controllers and garbage collector work.
                let _ = list_team(h);
                labelled(h, env).is_empty()
            },
        );
    }

    #[test]
    fn env_existing_cluster_without_flux_gets_it_and_loses_only_what_kindling_made() {
        let h = Harness::existing("flux", false);
        let planted = plant_team_objects(&h);
        let env = unique("exist");
        let report = existing(&h, &env, &["--wait", "--timeout", "60s"]);
        let created = &report["env"];
        assert_eq!(created["provider"], "existing", "{report}");
        assert_eq!(created["context"], "team");
        // No cluster was made: the fake kind and k3d were never called.
        assert!(!h.path("bin/kind-calls").exists());
        assert!(!h.path("bin/k3d-clusters").exists());
        // The rights were asked for before anything was written.
        let requests = h.api.requests();
        let first_write = requests
            .iter()
            .position(|r| r.method == "PATCH")
            .expect("kindling applied something");
        let reviews: Vec<String> = requests[..first_write]
            .iter()
            .filter(|r| r.path.ends_with("/selfsubjectaccessreviews"))
            .map(|r| r.body.clone())
            .collect();
        assert!(
            reviews
                .iter()
                .any(|b| b.contains("customresourcedefinitions")),
            "no review of the CRD right before the first write: {reviews:?}"
        );
        assert!(reviews.iter().any(|b| b.contains("portforward")));
        // Gitea runs in the env's namespace, labelled for the env, and was pushed to through
        // a port-forward.
        let ns = format!("kindling-{env}");
        let gitea = find(&h, "Deployment", Some(&ns), "gitea").expect("Gitea Deployment");
        assert_eq!(gitea["metadata"]["labels"][ENV_LABEL], env.as_str());
        assert!(
            requests.iter().any(|r| r
                .path
                .starts_with(&format!("/api/v1/namespaces/{ns}/pods/"))
                && r.path.ends_with("/portforward")),
            "no port-forward to the Gitea pod"
        );
        let state = h.state(&env);
        assert_eq!(h.gitea.head().as_deref(), state["commit"].as_str());
        assert_eq!(state["gitea"]["inCluster"], true);
        assert_eq!(
            state["gitea"]["url"], "",
            "a port-forward is never recorded"
        );
        assert_eq!(
            state["gitea"]["clusterRepoUrl"],
            format!("http://gitea.{ns}.svc.cluster.local:3000/kindling/source.git")
        );
        // Flux was not there: kindling installed it, labelled for the env.
        let crd = find(
            &h,
            "CustomResourceDefinition",
            None,
            "gitrepositories.source.toolkit.fluxcd.io",
        )
        .unwrap();
        assert_eq!(crd["metadata"]["labels"][ENV_LABEL], env.as_str());
        let status = status(&h, &env);
        assert_eq!(status["status"]["engineOrigin"], "installed", "{status}");
        assert_eq!(status["status"]["ready"], true, "{status}");
        assert_eq!(status["status"]["gitea"]["state"], "running");
        // A chart's objects carry helm-controller's origin labels, not kustomize-controller's.
        let traefik = find(&h, "Deployment", Some("traefik"), "traefik").unwrap();
        assert_eq!(
            traefik["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"], "ingress",
            "{traefik}"
        );
        assert!(traefik["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"].is_null());
        // The team's objects were not touched.
        assert_untouched(&h, &planted);
        // A sync pushes through a port-forward of its own process.
        let before = h.gitea.head();
        h.add_sample_application(
            "{name: notes, path: applications/notes, namespace: default}",
            "notes",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {text: first}\n",
        );
        h.json(&["env", "sync", &env]);
        assert_ne!(h.gitea.head(), before, "the sync pushed nothing");
        assert!(find(&h, "ConfigMap", Some("default"), "notes").is_some());
        // The cluster lists the env.
        let listed = ok(&list_team(&h));
        let envs = listed["envs"].as_array().unwrap();
        let mine = envs.iter().find(|e| e["name"] == env.as_str()).unwrap();
        assert_eq!(mine["knownHere"], true, "{listed}");
        // Delete: what the env made goes, the stamp through Flux, and nothing else.
        let deleted = h.json(&["env", "delete", &env]);
        assert!(
            deleted["deleted"][0]["clusterObjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o.as_str().unwrap().contains("Deployment")),
            "{deleted}"
        );
        wait_all_gone(&h, &env);
        assert!(
            find(
                &h,
                "CustomResourceDefinition",
                None,
                "gitrepositories.source.toolkit.fluxcd.io"
            )
            .is_none(),
            "the Flux kindling installed is removed"
        );
        let pruned: Vec<Value> = h
            .api
            .state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|s| {
                let labels = &s.object["metadata"]["labels"];
                !labels["kustomize.toolkit.fluxcd.io/name"].is_null()
                    || !labels["helm.toolkit.fluxcd.io/name"].is_null()
            })
            .map(|s| s.object.clone())
            .collect();
        assert!(
            pruned.is_empty(),
            "Flux left the stamp's objects: {pruned:?}"
        );
        assert_untouched(&h, &planted);
        assert!(!h.path("data/envs").join(&env).exists());
    }

    #[test]
    fn env_existing_cluster_uses_the_flux_it_finds_and_leaves_it() {
        let h = Harness::existing("flux", true);
        let env = unique("found");
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        let state = h.state(&env);
        assert_eq!(state["foundEngine"]["version"], "v2.9.4", "{state}");
        // Nothing of Flux's install was applied.
        assert!(
            !h.api
                .requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.query.contains("fieldManager=kindling-install")),
            "kindling applied an install manifest over the Flux it found"
        );
        // What only a cluster kindling made has: its containers to stop, a registry here.
        error_says(
            &h.run(&["env", "stop", &env, "--output", "json"], &[]),
            "which kindling did not make and does not stop",
        );
        error_says(
            &h.run(&["env", "build", &env, "app", "--output", "json"], &[]),
            "cannot pull from a registry on this machine",
        );
        // Another team's crashing pod is not this env's business.
        plant(
            &h.api,
            vec![json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "theirs", "namespace": "default"},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}})],
        );
        let status = status(&h, &env);
        assert!(
            !status.to_string().contains("theirs"),
            "status reports another team's pod: {status}"
        );
        assert_eq!(status["status"]["engineOrigin"], "found");
        // The cluster's own ingress serves the stamp, on its usual port.
        assert!(
            status.to_string().contains("\"https://api.localhost/\""),
            "{status}"
        );
        assert_eq!(status["status"]["engineVersion"], "v2.9.4");
        assert_eq!(status["status"]["ready"], true, "{status}");
        // `env apply` takes over objects the env's own engine tree made (they carry Flux's
        // owner labels, not the env's), and applies the entry from the working tree.
        let applied = h.json(&["env", "apply", &env, "website"]);
        assert!(
            applied["apply"]["applied"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{applied}"
        );
        // A laptop without Docker lists its envs on existing clusters.
        let listed = ok(&h.run(
            &["env", "list", "--output", "json"],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        ));
        assert_eq!(listed["envs"][0]["name"], env.as_str(), "{listed}");
        assert_eq!(listed["envs"][0]["provider"], "existing");
        let deleted = h.json(&["env", "delete", &env]);
        assert_eq!(
            deleted["deleted"][0]["engineKept"], "flux v2.9.4",
            "{deleted}"
        );
        wait_all_gone(&h, &env);
        for (kind, ns, name) in [
            ("Namespace", None, "flux-system"),
            (
                "CustomResourceDefinition",
                None,
                "kustomizations.kustomize.toolkit.fluxcd.io",
            ),
            ("Deployment", Some("flux-system"), "kustomize-controller"),
        ] {
            let live = find(&h, kind, ns, name).unwrap_or_else(|| panic!("{kind} {name} went"));
            assert!(live["metadata"]["deletionTimestamp"].is_null(), "{live}");
            assert!(live["metadata"]["labels"][ENV_LABEL].is_null(), "{live}");
        }
    }

    #[test]
    fn env_existing_cluster_gives_back_argocd_cm_keys_of_an_argo_cd_it_found() {
        let h = Harness::existing("argo", true);
        let env = unique("argofound");
        existing(
            &h,
            &env,
            &["--engine", "argo", "--wait", "--timeout", "60s"],
        );
        assert_eq!(h.state(&env)["foundEngine"]["version"], "v3.5.1");
        let cm = find(&h, "ConfigMap", Some("argocd"), "argocd-cm").unwrap();
        assert_eq!(cm["data"]["url"], "https://argocd.team.example");
        assert!(
            cm["data"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("resource.customizations")),
            "kindling's health check is not in argocd-cm: {cm}"
        );
        assert!(cm["metadata"]["labels"][ENV_LABEL].is_null());
        // As an older kindling left them: applied as `kindling`, not as a manager of the
        // env's own. The delete gives them back all the same.
        let managers = |cm: &Value| cm["metadata"]["managedFields"].to_string();
        assert!(
            managers(&cm).contains(&format!("kindling-keys-{env}")),
            "{cm}"
        );
        h.api.update(|stored| {
            for s in stored.iter_mut().filter(|s| s.name == "argocd-cm") {
                for f in s.object["metadata"]["managedFields"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .filter(|f| f["manager"].as_str().unwrap().starts_with("kindling-keys-"))
                {
                    f["manager"] = json!("kindling");
                }
            }
        });
        delete_and_wait_gone(&h, &env);
        let cm = find(&h, "ConfigMap", Some("argocd"), "argocd-cm").expect("argocd-cm stays");
        assert_eq!(
            cm["data"],
            json!({"url": "https://argocd.team.example"}),
            "{cm}"
        );
        assert!(
            find(
                &h,
                "StatefulSet",
                Some("argocd"),
                "argocd-application-controller"
            )
            .is_some()
        );
    }

    fn every_entry_ready(status: &Value) -> bool {
        status["entries"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.iter().all(|e| e["readiness"] == "ready"))
    }

    /// A stamp of its own for team `team`: one entry, a Namespace `team` with a ConfigMap and
    /// a Deployment, so two teams' stamps share nothing on the cluster.
    fn write_team_stamp(h: &Harness, team: &str) {
        let dir = h.path(&format!("source/stamps/{team}"));
        let entry = dir.join("applications/notes");
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(
            dir.join("stamp.yaml"),
            format!("apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata:\n  name: {team}\nspec:\n  ignore: [\"/*\", \"!/stamps/{team}/\"]\n  applications:\n    - name: notes\n      path: applications/notes\n      healthChecks:\n        - {{kind: Deployment, name: notes, namespace: {team}}}\n"),
        )
        .unwrap();
        std::fs::write(
            entry.join("notes.yaml"),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {team}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  namespace: {team}\ndata:\n  team: {team}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: notes\n  namespace: {team}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: notes}}}}\n  template:\n    metadata: {{labels: {{app: notes}}}}\n    spec:\n      containers: [{{name: notes, image: busybox}}]\n"),
        )
        .unwrap();
    }

    /// Several envs on one cluster, one Flux and the cluster's cert-manager: each env's Flux
    /// objects (Git credentials, source, root, entries) live in its own namespace beside its
    /// own Gitea, so the sample and a team's stamp both reconcile, each from its own Gitea,
    /// nothing of theirs is in flux-system, only the sample's env hands its CA to
    /// cert-manager (the team's stamp has no use for it), and deleting one leaves the other as
    /// it was.
    #[test]
    fn env_existing_two_envs_share_one_flux_each_in_its_own_namespace() {
        let h = Harness::existing("flux", true);
        install_cert_manager_as_found(&h.api, "cert-manager");
        write_team_stamp(&h, "team-b");
        let envs = [(unique("sample"), "sample"), (unique("teamb"), "team-b")];
        for (env, team) in &envs {
            let created = ok(&h.run_on_team(
                &["env", "create", env, "--stamp", team],
                &["--wait", "--timeout", "60s"],
            ));
            assert!(every_entry_ready(&created["env"]["status"]), "{created}");
            assert_eq!(h.state(env)["objectsNamespace"], format!("kindling-{env}"));
        }
        let mut commits = Vec::new();
        for (env, team) in &envs {
            let own = format!("kindling-{env}");
            let root = find(&h, "Kustomization", Some(&own), &format!("kindling-{team}"))
                .expect("the env's root in its namespace");
            assert_eq!(root["metadata"]["labels"][ENV_LABEL], env.as_str());
            // Its source is its own Gitea, and Flux has the commit the env pushed there.
            let source = find(&h, "GitRepository", Some(&own), "kindling").unwrap();
            let url = source["spec"]["url"].as_str().unwrap();
            assert!(url.contains(&format!("gitea.{own}.svc")), "{url}");
            let commit = h.state(env)["commit"].as_str().unwrap().to_string();
            assert_eq!(
                source["status"]["artifact"]["revision"],
                format!("main@sha1:{commit}")
            );
            commits.push(commit);
            assert!(find(&h, "Secret", Some(&own), "kindling-git-credentials").is_some());
        }
        assert_ne!(commits[0], commits[1], "both envs read one Gitea");
        let notes = find(&h, "ConfigMap", Some("team-b"), "notes").expect("the team's notes");
        assert_eq!(notes["data"]["team"], "team-b");
        let ca = find(&h, "Secret", Some("cert-manager"), "root-ca-secret").expect("the CA");
        assert_eq!(ca["metadata"]["labels"][ENV_LABEL], envs[0].0.as_str());
        // The cluster lists both, each with its stamp.
        let listed = ok(&list_team(&h));
        for (env, stamp) in &envs {
            let found = listed["envs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == env.as_str())
                .unwrap_or_else(|| panic!("{env} not listed: {listed}"));
            assert_eq!(found["knownHere"], true, "{listed}");
            assert!(found.to_string().contains(stamp), "{found}");
        }
        let in_flux_system: Vec<String> = h
            .api
            .state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|s| s.namespace.as_deref() == Some("flux-system"))
            .filter(|s| !s.object["metadata"]["labels"][ENV_LABEL].is_null())
            .map(|s| format!("{} {}", s.plural, s.name))
            .collect();
        assert!(in_flux_system.is_empty(), "{in_flux_system:?}");
        // The team's env goes; the sample's, its Gitea and its stamp's objects stay as they
        // were.
        let (second, first) = (&envs[0].0, &envs[1].0);
        delete_and_wait_gone(&h, first);
        assert!(find(&h, "ConfigMap", Some("team-b"), "notes").is_none());
        let root = sample_root(&h, second).unwrap();
        assert!(root["metadata"]["deletionTimestamp"].is_null(), "{root}");
        let status = h.json(&["env", "status", second, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        assert_eq!(
            status["status"]["engineObjectsNamespace"],
            format!("kindling-{second}")
        );
        // Flux, which was there first, stays for everyone.
        assert!(
            find(
                &h,
                "Deployment",
                Some("flux-system"),
                "kustomize-controller"
            )
            .is_some()
        );
        // Its source reads its credentials in its own namespace: without them there, the
        // fetch fails (as source-controller's `getAuthOpts` does), and status says why.
        let own = format!("kindling-{second}");
        h.api.update(|stored| {
            stored.retain(|s| {
                !(s.plural == "secrets"
                    && s.name == "kindling-git-credentials"
                    && s.namespace.as_deref() == Some(own.as_str()))
            })
        });
        wait_until(
            "the source to say its credentials are missing",
            std::time::Duration::from_secs(20),
            || {
                h.json(&["env", "status", second])
                    .to_string()
                    .contains(&format!(
                        "failed to get secret '{own}/kindling-git-credentials'"
                    ))
            },
        );
        delete_and_wait_gone(&h, second);
    }

    /// The same stamp twice on one cluster: the second env's stamp would install a
    /// cert-manager over the first's (and own the same namespaces); it is refused before it
    /// changes anything, naming the first, and the first is untouched.
    #[test]
    fn env_existing_second_env_of_the_same_stamp_is_refused_naming_the_first() {
        let h = Harness::existing("flux", true);
        let first = unique("first");
        existing(&h, &first, &["--wait", "--timeout", "60s"]);
        let second = unique("second");
        let out = h.create_existing(&second, &[]);
        error_says(
            &out,
            &format!("was installed by kindling env {first}'s stamp"),
        );
        assert!(
            !wrote_anything(&h, &second),
            "the second env made something"
        );
        let own = format!("kindling-{first}");
        // A user who may not read the first env's namespace is told the same: the
        // cert-manager's origin labels point into it.
        h.api.state.lock().unwrap().denied_namespaces = vec![own.clone()];
        error_says(
            &h.create_existing(&second, &[]),
            &format!("was installed by kindling env {first}'s stamp"),
        );
        h.api.state.lock().unwrap().denied_namespaces.clear();
        let root = sample_root(&h, &first).unwrap();
        assert_eq!(root["metadata"]["labels"][ENV_LABEL], first.as_str());
        h.json(&["env", "delete", &second]);
        assert!(sample_root(&h, &first).is_some());
    }

    /// `env restart --stamp` to a stamp that counts on cert-manager (a Certificate of its
    /// own) would hand the env's CA over where a Secret of that name is the team's: refused
    /// before the running stamp is removed.
    #[test]
    fn env_existing_restart_to_a_stamp_that_would_take_someone_elses_ca_keeps_the_env() {
        let h = Harness::existing("flux", true);
        let theirs = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "root-ca-secret", "namespace": "cert-manager",
                "labels": {"team": "platform"}},
            "data": {"tls.crt": "eA=="}});
        plant(
            &h.api,
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}),
                theirs.clone(),
            ],
        );
        write_team_stamp(&h, "team-b");
        let env = unique("teamb");
        ok(&h.run_on_team(
            &["env", "create", &env, "--stamp", "team-b"],
            &["--wait", "--timeout", "60s"],
        ));
        write_team_stamp(&h, "team-c");
        super::common::write(
            &h.path("source/stamps/team-c/applications/notes/certificate.yaml"),
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: notes, namespace: team-c}\nspec: {secretName: notes-tls, dnsNames: [notes.team-c.example], issuerRef: {name: kindling-ca, kind: ClusterIssuer}}\n",
        );
        error_says(
            &h.run(
                &[
                    "env", "restart", &env, "--stamp", "team-c", "--output", "json",
                ],
                &[],
            ),
            "the env's CA Secret would go to Secret cert-manager/root-ca-secret, which is not the env's (someone else's)",
        );
        let root = find(
            &h,
            "Kustomization",
            Some(&format!("kindling-{env}")),
            "kindling-team-b",
        )
        .expect("the running stamp's root");
        assert!(root["metadata"]["deletionTimestamp"].is_null(), "{root}");
        assert_eq!(h.state(&env)["stamp"], "team-b");
        assert_untouched(&h, &[theirs]);
    }

    /// An env whose first stamp counted on no cert-manager never asked about the cluster's;
    /// `env restart --stamp sample` asks then, before the running stamp goes: the cluster's
    /// is used (no second install), and the CA goes where it reads it.
    #[test]
    fn env_existing_restart_to_a_stamp_with_cert_manager_uses_the_clusters() {
        let h = Harness::existing("flux", true);
        install_cert_manager_as_found(&h.api, "platform");
        write_team_stamp(&h, "team-b");
        let env = unique("later");
        ok(&h.run_on_team(
            &["env", "create", &env, "--stamp", "team-b"],
            &["--wait", "--timeout", "60s"],
        ));
        let state = h.state(&env);
        assert_ne!(state["certManagerAsked"], true, "{state}");
        assert!(state["clusterCertManager"].is_null(), "{state}");
        assert!(find(&h, "Secret", Some("platform"), "root-ca-secret").is_none());
        ok(&h.run(
            &[
                "env", "restart", &env, "--stamp", "sample", "--output", "json",
            ],
            &[],
        ));
        let state = h.state(&env);
        assert_eq!(state["certManagerAsked"], true, "{state}");
        assert_eq!(state["clusterCertManager"]["resourceNamespace"], "platform");
        let own = format!("kindling-{env}");
        assert!(find(&h, "HelmRelease", Some(&own), "certs").is_none());
        let ca = find(&h, "Secret", Some("platform"), "root-ca-secret").expect("the CA");
        assert_eq!(ca["metadata"]["labels"][ENV_LABEL], env.as_str());
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        delete_and_wait_gone(&h, &env);
        assert!(find(&h, "Deployment", Some("platform"), "cert-manager").is_some());
    }

    /// A Secret's `data.KEY`, decoded.
    fn secret_text(secret: &Value, key: &str) -> String {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap_or_default())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Several envs on one Argo CD, which the first env installs with `application.namespaces:
    /// kindling-*` in argocd-cmd-params-cm: each env's Applications live in its own namespace
    /// under an AppProject of its own in argocd (which lists that namespace in
    /// `sourceNamespaces`), its repository Secret in argocd scoped to that project, and its
    /// stamp's objects carry `NS_NAME` tracking ids. Both reconcile, each from its own Gitea;
    /// deleting one takes its project and Secret and leaves the other Ready.
    #[test]
    fn env_existing_two_envs_share_one_argo_cd_each_in_its_own_namespace() {
        let h = Harness::existing("argo", false);
        write_team_stamp(&h, "team-b");
        let envs = [(unique("sample"), "sample"), (unique("teamb"), "team-b")];
        for (env, team) in &envs {
            let created = ok(&h.run_on_team(
                &["env", "create", env, "--stamp", team],
                &["--engine", "argo", "--wait", "--timeout", "60s"],
            ));
            assert!(every_entry_ready(&created["env"]["status"]), "{created}");
            assert_eq!(h.state(env)["objectsNamespace"], format!("kindling-{env}"));
        }
        let params = find(&h, "ConfigMap", Some("argocd"), "argocd-cmd-params-cm").unwrap();
        assert_eq!(params["data"]["application.namespaces"], "kindling-*");
        let mut commits = Vec::new();
        for (env, team) in &envs {
            let own = format!("kindling-{env}");
            let root = find(&h, "Application", Some(&own), &format!("kindling-{team}"))
                .expect("the env's root in its namespace");
            assert_eq!(root["spec"]["project"], own.as_str());
            assert_eq!(root["metadata"]["labels"][ENV_LABEL], env.as_str());
            let project = find(&h, "AppProject", Some("argocd"), &own).expect("its project");
            assert_eq!(project["spec"]["sourceNamespaces"], json!([own]));
            let secret = find(&h, "Secret", Some("argocd"), &format!("{own}-repository"))
                .expect("its repository Secret");
            assert_eq!(secret_text(&secret, "project"), own);
            assert!(
                secret_text(&secret, "url").contains(&format!("gitea.{own}.svc")),
                "{secret}"
            );
            // Argo CD synced the commit the env pushed to its own Gitea.
            let commit = h.state(env)["commit"].as_str().unwrap().to_string();
            assert_eq!(root["status"]["sync"]["revision"], commit.as_str());
            commits.push(commit);
        }
        assert_ne!(commits[0], commits[1], "both envs read one Gitea");
        let apps_in_argocd: Vec<String> = h
            .api
            .state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|s| s.plural == "applications" && s.namespace.as_deref() == Some("argocd"))
            .map(|s| s.name.clone())
            .collect();
        assert!(apps_in_argocd.is_empty(), "{apps_in_argocd:?}");
        let team_env = &envs[1].0;
        let notes = find(&h, "ConfigMap", Some("team-b"), "notes").expect("the team's notes");
        assert_eq!(
            notes["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
            format!("kindling-{team_env}_notes:/ConfigMap:team-b/notes")
        );
        let status = status(&h, team_env);
        assert_eq!(
            status["status"]["engineObjectsNamespace"],
            format!("kindling-{team_env}")
        );
        // The cluster lists both.
        let listed = ok(&list_team(&h)).to_string();
        assert!(
            envs.iter().all(|(env, _)| listed.contains(env.as_str())),
            "{listed}"
        );
        // Suspend, resume and sync address the Applications where they are.
        let root = || {
            find(
                &h,
                "Application",
                Some(&format!("kindling-{team_env}")),
                "kindling-team-b",
            )
            .unwrap()
        };
        h.json(&["env", "suspend", team_env]);
        assert!(
            root()["spec"]["syncPolicy"]["automated"].is_null(),
            "{}",
            root()
        );
        h.json(&["env", "resume", team_env]);
        assert!(
            root()["spec"]["syncPolicy"]["automated"].is_object(),
            "{}",
            root()
        );
        let synced = h.json(&["env", "sync", team_env]);
        assert!(
            synced.to_string().contains("Application kindling-team-b"),
            "{synced}"
        );
        // The team's env goes with its project and Secret; the sample's stays as it was.
        delete_and_wait_gone(&h, team_env);
        assert!(find(&h, "ConfigMap", Some("team-b"), "notes").is_none());
        let own = format!("kindling-{team_env}");
        assert!(find(&h, "AppProject", Some("argocd"), &own).is_none());
        assert!(find(&h, "Secret", Some("argocd"), &format!("{own}-repository")).is_none());
        let sample_env = &envs[0].0;
        let status = h.json(&["env", "status", sample_env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        delete_and_wait_gone(&h, sample_env);
        // The Argo CD the sample's env installed goes with the last env on it.
        assert!(
            find(
                &h,
                "StatefulSet",
                Some("argocd"),
                "argocd-application-controller"
            )
            .is_none()
        );
    }

    /// An Argo CD found on the cluster that reconciles Applications only in argocd (its
    /// `application.namespaces` empty, as install.yaml leaves it): an env's Applications go
    /// there, and a second env is refused before it writes anything, naming the first. Once
    /// the team sets `application.namespaces: kindling-*` and restarts the controller, as the
    /// Argo CD docs say, a new env gets a namespace of its own beside the first.
    #[test]
    fn env_existing_argo_cd_that_reconciles_only_argocd_takes_one_env() {
        let h = Harness::existing("argo", true);
        let first = unique("first");
        let created = existing(
            &h,
            &first,
            &["--engine", "argo", "--wait", "--timeout", "60s"],
        );
        assert!(every_entry_ready(&created["env"]["status"]), "{created}");
        assert_eq!(h.state(&first)["objectsNamespace"], "argocd");
        let root = find(&h, "Application", Some("argocd"), "kindling-sample").unwrap();
        assert_eq!(root["spec"]["project"], "default");
        assert!(find(&h, "Secret", Some("argocd"), "kindling-repository").is_some());
        let second = unique("second");
        write_team_stamp(&h, "team-b");
        let team = ["env", "create", second.as_str(), "--stamp", "team-b"];
        let out = h.run_on_team(&team, &["--engine", "argo"]);
        let doc = error_says(
            &out,
            &format!("kindling env {first} uses this cluster's argo already"),
        );
        assert!(doc.to_string().contains("kindling-*"), "{doc}");
        assert!(!wrote_anything(&h, &second));
        // The team sets the key but does not restart the controller yet: kindling takes the
        // ConfigMap at its word, and the env's root waits unseen (Argo CD ignores it
        // silently); status says what that may mean.
        h.api.update(|stored| {
            for s in stored.iter_mut() {
                if s.plural == "configmaps" && s.name == "argocd-cmd-params-cm" {
                    s.object["data"]["application.namespaces"] = json!("kindling-*");
                }
            }
        });
        ok(&h.run_on_team(&team, &["--engine", "argo"]));
        assert_eq!(
            h.state(&second)["objectsNamespace"],
            format!("kindling-{second}")
        );
        let unseen = status(&h, &second).to_string();
        assert!(unseen.contains("has not reconciled it yet"), "{unseen}");
        // `kubectl rollout restart`: a new pod template, and the controller reads the key.
        h.api.update(|stored| {
            for s in stored.iter_mut() {
                if s.plural == "statefulsets" && s.name == "argocd-application-controller" {
                    s.object["spec"]["template"]["metadata"]["annotations"]
                        ["kubectl.kubernetes.io/restartedAt"] = json!("2026-11-30T18:00:00Z");
                }
            }
        });
        let status = h.json(&["env", "status", &second, "--wait", "--timeout", "60s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        let status = h.json(&["env", "status", &first, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        // The first env goes; the health check both envs set in argocd-cm stays for the
        // second (each env applies it as a field manager of its own, and server-side apply
        // keeps a field another applier still owns).
        delete_and_wait_gone(&h, &first);
        let cm = find(&h, "ConfigMap", Some("argocd"), "argocd-cm").unwrap();
        assert!(
            cm["data"]["resource.customizations.health.argoproj.io_Application"].is_string(),
            "{cm}"
        );
        let status = h.json(&["env", "status", &second, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        delete_and_wait_gone(&h, &second);
        // The found Argo CD stays, its argocd-cm as the team left it.
        let cm = find(&h, "ConfigMap", Some("argocd"), "argocd-cm").unwrap();
        assert_eq!(
            cm["data"],
            json!({"url": "https://argocd.team.example"}),
            "{cm}"
        );
    }

    /// An env made before envs on Flux had a namespace each has no `fluxNamespace` in its
    /// state and its Flux objects in flux-system: it keeps them there through a rerun of the
    /// create, sync, suspend, resume and status, and its delete removes them there.
    #[test]
    fn env_existing_env_recorded_without_a_flux_namespace_keeps_flux_system() {
        let h = Harness::existing("flux", true);
        // Made where such an env had its objects, then its record made old.
        set_kustomize_controller_args(&h, json!(["--watch-all-namespaces=false"]));
        let env = unique("old");
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        set_kustomize_controller_args(&h, json!([]));
        let path = h.path("data/envs").join(&env).join("state.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        state.as_object_mut().unwrap().remove("objectsNamespace");
        std::fs::write(&path, state.to_string()).unwrap();
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        assert!(h.state(&env)["objectsNamespace"].is_null());
        let root = || find(&h, "Kustomization", Some("flux-system"), "kindling-sample").unwrap();
        assert_eq!(root()["metadata"]["labels"][ENV_LABEL], env.as_str());
        assert!(sample_root(&h, &env).is_none());
        h.json(&["env", "sync", &env]);
        h.json(&["env", "suspend", &env]);
        assert_eq!(root()["spec"]["suspend"], true);
        h.json(&["env", "resume", &env]);
        assert_ne!(root()["spec"]["suspend"], true);
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        assert_eq!(status["status"]["engineObjectsNamespace"], "flux-system");
        delete_and_wait_gone(&h, &env);
        assert!(find(&h, "Kustomization", Some("flux-system"), "kindling-sample").is_none());
    }

    /// A Flux whose appliers read only flux-system (`--watch-all-namespaces=false`): an env's
    /// objects go there, as the only place it reconciles, and so a second env would share
    /// them: refused before it changes anything, naming the first.
    #[test]
    fn env_existing_flux_that_reads_only_its_namespace_takes_one_env() {
        let h = Harness::existing("flux", true);
        set_kustomize_controller_args(&h, json!(["--watch-all-namespaces=false"]));
        let first = unique("first");
        let created = existing(&h, &first, &["--wait", "--timeout", "60s"]);
        assert!(every_entry_ready(&created["env"]["status"]), "{created}");
        assert_eq!(h.state(&first)["objectsNamespace"], "flux-system");
        let root = find(&h, "Kustomization", Some("flux-system"), "kindling-sample").unwrap();
        assert_eq!(root["metadata"]["labels"][ENV_LABEL], first.as_str());
        let second = unique("second");
        write_team_stamp(&h, "team-b");
        let out = h.run_on_team(&["env", "create", &second, "--stamp", "team-b"], &[]);
        let doc = error_says(
            &out,
            &format!("kindling env {first} uses this cluster's flux already"),
        );
        assert!(
            doc["error"]
                .to_string()
                .contains("--watch-all-namespaces=false"),
            "{doc}"
        );
        assert!(
            !wrote_anything(&h, &second),
            "the second env made something"
        );
    }

    /// On a shared cluster the client itself refuses to patch or delete what is not the
    /// env's: here the root lost the env's label (as a team's object of that name would lack
    /// it), and `env suspend`, which patches engine objects by name, leaves it alone.
    #[test]
    fn env_existing_cluster_patches_nothing_that_is_not_the_envs() {
        let h = Harness::existing("flux", true);
        let env = unique("patch");
        existing(&h, &env, &[]);
        h.api.update(|stored| {
            let root = stored
                .iter_mut()
                .find(|s| s.plural == "kustomizations" && s.name == "kindling-sample")
                .unwrap();
            root.object["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove(ENV_LABEL);
        });
        let out = h.run(&["env", "suspend", &env, "--output", "json"], &[]);
        error_says(&out, "kindling does not change it");
        let root = sample_root(&h, &env).unwrap();
        assert_ne!(root["spec"]["suspend"], true, "{root}");
    }

    #[test]
    fn env_existing_cluster_names_every_missing_right_and_changes_nothing() {
        let h = Harness::existing("flux", false);
        h.api.state.lock().unwrap().denied = vec![
            "create customresourcedefinitions.apiextensions.k8s.io".into(),
            "create pods/portforward".into(),
        ];
        let env = unique("norights");
        let out = h.create_existing(&env, &[]);
        let doc = error_says(&out, "lacks rights kindling needs; nothing was changed");
        let message = doc["error"].to_string();
        assert!(
            message.contains("create customresourcedefinitions.apiextensions.k8s.io (cluster-wide): for installing the engine"),
            "{message}"
        );
        assert!(
            message.contains(&format!("create pods/portforward -n kindling-{env}")),
            "{message}"
        );
        let writes: Vec<String> = h
            .api
            .requests()
            .iter()
            .filter(|r| matches!(r.method.as_str(), "PATCH" | "PUT" | "DELETE"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(writes.is_empty(), "changed the cluster: {writes:?}");
    }

    #[test]
    fn env_existing_cluster_does_not_take_over_an_object_it_did_not_make() {
        let h = Harness::existing("flux", true);
        let env = unique("takeover");
        let ns = format!("kindling-{env}");
        plant(
            &h.api,
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "gitea-admin", "namespace": ns}, "stringData": {"password": "theirs"}}),
            ],
        );
        let out = h.create_existing(&env, &[]);
        error_says(
            &out,
            &format!("Secret {ns}/gitea-admin exists on the cluster and kindling did not make it"),
        );
        let secret = find(&h, "Secret", Some(&ns), "gitea-admin").unwrap();
        assert_eq!(secret["stringData"]["password"], "theirs");
        assert!(secret["metadata"]["labels"][ENV_LABEL].is_null());
        // The namespace was there: used as found, never labelled, so never deleted.
        let namespace = find(&h, "Namespace", None, &ns).unwrap();
        assert!(namespace["metadata"]["labels"][ENV_LABEL].is_null());
        h.json(&["env", "delete", &env]);
        assert!(find(&h, "Namespace", None, &ns).is_some());
    }

    /// A cert-manager the cluster runs already (in `platform`, its chart's default
    /// `--cluster-resource-namespace=$(POD_NAMESPACE)`): the env uses it. The sample's own
    /// `certs` entry is left out (Helm would refuse a second release over the first's CRDs),
    /// the env's CA Secret goes where that cert-manager reads ClusterIssuers' Secrets, the
    /// stamp's certificates are issued from it, and the delete leaves cert-manager as it was.
    #[test]
    fn env_existing_cluster_with_its_own_cert_manager_uses_it_and_leaves_it() {
        let h = Harness::existing("flux", true);
        install_cert_manager_as_found(&h.api, "platform");
        let env = unique("cm");
        let plan = existing(&h, &env, &["--dry-run"]);
        assert!(
            plan["plan"]["notes"]
                .to_string()
                .contains("cert-manager v1.21.1 of the cluster (namespace platform) used"),
            "{plan}"
        );
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        let state = h.state(&env);
        assert_eq!(
            state["clusterCertManager"],
            json!({"version": "v1.21.1", "namespace": "platform", "resourceNamespace": "platform"}),
            "{state}"
        );
        // No second cert-manager: no HelmRelease for `certs`, no chart Deployment elsewhere
        // (the env's Flux objects are in its own namespace, where the issuer entry is).
        let own = format!("kindling-{env}");
        assert!(find(&h, "HelmRelease", Some(&own), "certs").is_none());
        let controllers: Vec<Value> = h
            .api
            .objects_of("Deployment")
            .into_iter()
            .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/name"] == "cert-manager")
            .collect();
        assert_eq!(controllers.len(), 1, "{controllers:?}");
        // The issuer entry no longer waits for the left-out one.
        let issuer = find(&h, "Kustomization", Some(&own), "certs-issuer").unwrap();
        assert!(issuer["spec"]["dependsOn"].is_null(), "{issuer}");
        // The CA is where the cluster's cert-manager reads it, labelled for the env, and the
        // ClusterIssuer is ready from it; the stamp's certificates are issued.
        let ca = find(&h, "Secret", Some("platform"), "root-ca-secret").expect("the CA Secret");
        assert_eq!(ca["metadata"]["labels"][ENV_LABEL], env.as_str());
        assert!(find(&h, "Secret", Some("cert-manager"), "root-ca-secret").is_none());
        let cluster_issuer = find(&h, "ClusterIssuer", None, "kindling-ca").unwrap();
        assert_eq!(
            cluster_issuer["status"]["conditions"][0]["status"], "True",
            "{cluster_issuer}"
        );
        let status = status(&h, &env);
        assert_eq!(status["status"]["ready"], true, "{status}");
        assert_eq!(status["status"]["certManager"]["namespace"], "platform");
        // A rerun keeps the record (the cert-manager is not taken for the stamp's own).
        existing(&h, &env, &[]);
        assert_eq!(
            h.state(&env)["clusterCertManager"],
            state["clusterCertManager"]
        );
        // Delete: the CA Secret goes; cert-manager and its CRDs stay as they were.
        delete_and_wait_gone(&h, &env);
        assert!(find(&h, "Secret", Some("platform"), "root-ca-secret").is_none());
        let controller = find(&h, "Deployment", Some("platform"), "cert-manager").unwrap();
        assert!(controller["metadata"]["deletionTimestamp"].is_null());
        assert!(
            find(
                &h,
                "CustomResourceDefinition",
                None,
                "certificates.cert-manager.io"
            )
            .is_some()
        );
    }

    /// An object the stamp's own directories declare that the cluster has already, someone
    /// else's (here the team's namespace `website`, which the sample's website entry declares):
    /// the engine would take it over and delete it with the env, so the create stops before
    /// anything changes.
    #[test]
    fn env_existing_stamp_object_that_is_someone_elses_is_refused_before_anything_changes() {
        let h = Harness::existing("flux", true);
        let planted = vec![
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "website", "labels": {"team": "web"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "keep-me", "namespace": "website"}, "data": {"a": "1"}}),
        ];
        plant(&h.api, planted.clone());
        let env = unique("taken");
        let doc = error_says(
            &h.create_existing(&env, &[]),
            "Namespace website exists on the cluster and is not the env's, and entry website of stamp sample declares it",
        );
        assert!(
            doc["error"].to_string().contains("delete it with the env"),
            "{doc}"
        );
        // Asked in the preflight: nothing was applied, nor pushed.
        assert!(
            !h.api.requests().iter().any(|r| r.method == "PATCH"),
            "the create changed the cluster"
        );
        assert!(h.gitea.head().is_none(), "the create pushed");
        assert_untouched(&h, &planted);
        h.json(&["env", "delete", &env]);
        assert_untouched(&h, &planted);
    }

    /// A chart that renders an object the cluster has already (here the team's IngressClass
    /// `nginx`, which the sample's Traefik chart makes too): helm-controller would take it over
    /// by default; on a shared cluster kindling's HelmReleases say `disableTakeOwnership`, so
    /// Helm refuses it, the entry says why, and the delete leaves it.
    #[test]
    fn env_existing_chart_does_not_take_over_the_teams_object() {
        let h = Harness::existing("flux", true);
        let theirs = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "labels": {"team": "platform"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}});
        plant(&h.api, vec![theirs.clone()]);
        let env = unique("chart");
        existing(&h, &env, &[]);
        let release = find(
            &h,
            "HelmRelease",
            Some(&format!("kindling-{env}")),
            "ingress",
        )
        .unwrap();
        assert_eq!(release["spec"]["install"]["disableTakeOwnership"], true);
        assert_eq!(release["spec"]["upgrade"]["disableTakeOwnership"], true);
        wait_until(
            "the ingress entry to say Helm refused the IngressClass",
            std::time::Duration::from_secs(20),
            || {
                status(&h, &env).to_string().contains(
                    "IngressClass \\\"nginx\\\" in namespace \\\"\\\" exists and cannot be imported into the current release",
                )
            },
        );
        let live = find(&h, "IngressClass", None, "nginx").unwrap();
        assert!(
            live["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null(),
            "{live}"
        );
        delete_and_wait_gone(&h, &env);
        let live = find(&h, "IngressClass", None, "nginx").expect("the team's IngressClass went");
        assert_eq!(live["metadata"]["labels"]["team"], "platform");
        assert!(live["metadata"]["deletionTimestamp"].is_null());
    }

    /// The team's ConfigMap `default/team-notes` on the cluster, and an edit of the sample that
    /// declares one of that name too; returns the team's.
    fn declare_the_teams_notes(h: &Harness) -> Value {
        let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "team-notes", "namespace": "default"}, "data": {"text": "theirs"}});
        plant(&h.api, vec![theirs.clone()]);
        h.add_sample_application(
            "{name: notes, path: applications/notes, namespace: default}",
            "notes",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: team-notes}\ndata: {text: ours}\n",
        );
        theirs
    }

    /// The same check guards `env sync`: an edit that declares the team's ConfigMap is refused
    /// before it is pushed (the engine would read the commit on its own).
    #[test]
    fn env_existing_sync_that_declares_someone_elses_object_pushes_nothing() {
        let h = Harness::existing("flux", true);
        let env = unique("syncs");
        existing(&h, &env, &[]);
        let theirs = declare_the_teams_notes(&h);
        let before = h.gitea.head();
        error_says(
            &h.run(&["env", "sync", &env, "--output", "json"], &[]),
            "ConfigMap default/team-notes exists on the cluster and is not the env's",
        );
        assert_eq!(h.gitea.head(), before, "the sync pushed");
        assert_untouched(&h, &[theirs]);
    }

    /// `env restart` checks the stamp it will bootstrap before it removes the running one: a
    /// refusal leaves the env as it was.
    #[test]
    fn env_existing_restart_that_declares_someone_elses_object_keeps_the_env() {
        let h = Harness::existing("flux", true);
        let env = unique("restart");
        existing(&h, &env, &[]);
        let theirs = declare_the_teams_notes(&h);
        error_says(
            &h.run(&["env", "restart", &env, "--output", "json"], &[]),
            "ConfigMap default/team-notes exists on the cluster and is not the env's",
        );
        let root = sample_root(&h, &env).expect("the running stamp's root");
        assert!(root["metadata"]["deletionTimestamp"].is_null(), "{root}");
        assert_untouched(&h, &[theirs]);
    }

    /// A Flux locked down for tenants (`--default-service-account`) impersonates that account
    /// for every object without `serviceAccountName`: without the account in flux-system every
    /// apply of the env would fail, so the create stops first; with it, the Flux is used.
    #[test]
    fn env_existing_flux_that_impersonates_a_missing_account_is_refused() {
        let h = Harness::existing("flux", true);
        set_kustomize_controller_args(
            &h,
            json!([
                "--watch-all-namespaces=true",
                "--default-service-account=tenant"
            ]),
        );
        let env = unique("sa");
        let doc = error_says(
            &h.create_existing(&env, &["--dry-run"]),
            "--default-service-account=tenant and flux-system has no ServiceAccount tenant",
        );
        assert!(
            doc["error"].to_string().contains("kustomize-controller"),
            "{doc}"
        );
        plant(
            &h.api,
            vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "tenant", "namespace": "flux-system"}})],
        );
        let plan = existing(&h, &env, &["--dry-run"]);
        assert_eq!(plan["plan"]["provider"], "existing", "{plan}");
    }

    /// A user whose rights end at namespaces (a RoleBinding in each, no list across all): the
    /// rights check asks for `list` where the env applies, and `env delete` finds everything
    /// the env labelled by listing there, not across the cluster.
    #[test]
    fn env_existing_delete_lists_only_where_the_env_applied() {
        let h = Harness::existing("flux", true);
        h.api.state.lock().unwrap().denied_cluster_wide = [
            "list secrets",
            "list services",
            "list persistentvolumeclaims",
            "list deployments.apps",
            "list kustomizations.kustomize.toolkit.fluxcd.io",
            "list helmreleases.helm.toolkit.fluxcd.io",
            "list gitrepositories.source.toolkit.fluxcd.io",
        ]
        .map(String::from)
        .to_vec();
        let env = unique("ns");
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        let ns = format!("kindling-{env}");
        assert!(
            h.api
                .requests()
                .iter()
                .any(|r| r.path.ends_with("/selfsubjectaccessreviews")
                    && r.body.contains("\"verb\":\"list\"")
                    && r.body.contains("\"resource\":\"secrets\"")
                    && r.body.contains(&ns)),
            "the rights check did not ask for list in the env's namespace"
        );
        let kinds = std::fs::read_to_string(h.path("data/envs").join(&env).join("owned-kinds"))
            .unwrap_or_default();
        let before = h.api.requests().len();
        h.json(&["env", "delete", &env]);
        let delete_requests = h.api.requests()[before..].to_vec();
        wait_all_gone(&h, &env);
        assert!(
            find(&h, "Deployment", Some(&ns), "gitea").is_none(),
            "{kinds}"
        );
        assert!(
            find(
                &h,
                "Secret",
                Some("flux-system"),
                "kindling-git-credentials"
            )
            .is_none()
        );
        // The delete found the env's Secrets in their namespaces, not across the cluster.
        assert!(
            !delete_requests.iter().any(|r| r.method == "GET"
                && r.path == "/api/v1/secrets"
                && r.query.contains("labelSelector")),
            "the delete listed Secrets across the cluster"
        );
    }

    /// A user who may not list Flux's objects across the cluster cannot tell whether others use
    /// the Flux the env installed: the delete keeps it (its CRDs going would take everyone's
    /// objects of those kinds with them) and says so.
    #[test]
    fn env_existing_delete_keeps_an_engine_it_cannot_tell_is_unused() {
        let h = Harness::existing("flux", false);
        let env = unique("keep");
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        h.api.state.lock().unwrap().denied_cluster_wide = [
            "list kustomizations.kustomize.toolkit.fluxcd.io",
            "list helmreleases.helm.toolkit.fluxcd.io",
        ]
        .map(String::from)
        .to_vec();
        let deleted = h.json(&["env", "delete", &env]);
        assert!(
            deleted["deleted"][0]["engineKept"]
                .as_str()
                .is_some_and(|k| k.contains("still used by others")),
            "{deleted}"
        );
        assert!(
            find(
                &h,
                "CustomResourceDefinition",
                None,
                "kustomizations.kustomize.toolkit.fluxcd.io"
            )
            .is_some()
        );
    }

    /// The cert-manager question is asked once, by the env's first create: a rerun after a
    /// crash that left the bootstrap done but not recorded finds the stamp's own cert-manager
    /// running, and must not take it for the cluster's (the stamp's entry would be dropped and
    /// Flux would uninstall it).
    #[test]
    fn env_existing_rerun_never_takes_the_stamps_cert_manager_for_the_clusters() {
        let h = Harness::existing("flux", true);
        let env = unique("again");
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        assert_eq!(h.state(&env)["certManagerAsked"], true);
        assert!(find(&h, "Deployment", Some("cert-manager"), "cert-manager").is_some());
        // The crash: the bootstrap happened, its record did not.
        let path = h.path("data/envs").join(&env).join("state.json");
        let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        state["steps"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["name"] != "bootstrap");
        std::fs::write(&path, state.to_string()).unwrap();
        existing(&h, &env, &["--wait", "--timeout", "60s"]);
        let state = h.state(&env);
        assert!(state["clusterCertManager"].is_null(), "{state}");
        assert!(find(&h, "HelmRelease", Some(&format!("kindling-{env}")), "certs").is_some());
    }

    /// The same on Argo CD: no Application installs a second cert-manager, the issuer's
    /// Application waits for nothing, and the stamp comes up from the cluster's cert-manager.
    #[test]
    fn env_existing_cluster_cert_manager_is_used_on_argo_too() {
        let h = Harness::existing("argo", true);
        install_cert_manager_as_found(&h.api, "platform");
        let env = unique("cmargo");
        existing(
            &h,
            &env,
            &["--engine", "argo", "--wait", "--timeout", "60s"],
        );
        assert_eq!(
            h.state(&env)["clusterCertManager"]["resourceNamespace"],
            "platform"
        );
        assert!(find(&h, "Application", Some("argocd"), "certs").is_none());
        assert!(find(&h, "Application", Some("argocd"), "certs-issuer").is_some());
        assert!(find(&h, "Secret", Some("platform"), "root-ca-secret").is_some());
        let issuer = find(&h, "ClusterIssuer", None, "kindling-ca").unwrap();
        assert_eq!(
            issuer["status"]["conditions"][0]["status"], "True",
            "{issuer}"
        );
        let status = status(&h, &env);
        assert_eq!(status["status"]["ready"], true, "{status}");
        delete_and_wait_gone(&h, &env);
        assert!(find(&h, "Deployment", Some("platform"), "cert-manager").is_some());
    }

    /// A cert-manager the env cannot use stops the create before anything changes: CRDs with
    /// no controller (left by an uninstall), or a ClusterIssuer under the stamp's name that
    /// is someone else's.
    #[test]
    fn env_existing_cluster_cert_manager_that_cannot_be_used_is_refused_before_anything_changes() {
        let h = Harness::existing("flux", true);
        let crds: Vec<Value> = super::common::fake_cluster::chart_workloads(
            "cert-manager",
            "platform",
            &json!({"crds": {"enabled": true}}),
        )
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
        plant(&h.api, crds);
        let env = unique("cm");
        error_says(
            &h.create_existing(&env, &[]),
            "no cert-manager controller Deployment runs",
        );
        install_cert_manager_as_found(&h.api, "platform");
        plant(
            &h.api,
            vec![
                json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": "kindling-ca"}, "spec": {"selfSigned": {}}}),
            ],
        );
        let doc = error_says(
            &h.create_existing(&env, &["--dry-run"]),
            "it has ClusterIssuer kindling-ca (declared in",
        );
        assert!(
            doc["error"].to_string().contains("cluster-issuer.yaml"),
            "{doc}"
        );
        error_says(
            &h.create_existing(&env, &[]),
            "it has ClusterIssuer kindling-ca",
        );
        assert!(
            !h.api
                .requests()
                .iter()
                .any(|r| matches!(r.method.as_str(), "PATCH" | "DELETE")),
            "changed the cluster"
        );
        assert!(!h.path("data/envs").join(&env).join("state.json").exists());
    }

    /// `--dry-run` on an existing cluster asks what it would fail on there (read-only) and
    /// changes nothing.
    #[test]
    fn env_existing_dry_run_checks_the_rights_and_writes_nothing() {
        let h = Harness::existing("flux", false);
        let env = unique("plan");
        let plan = existing(&h, &env, &["--dry-run"]);
        assert_eq!(plan["plan"]["provider"], "existing", "{plan}");
        assert_eq!(plan["plan"]["context"], "team");
        assert!(
            plan.to_string()
                .contains(&format!("gitea.kindling-{env}.svc.cluster.local")),
            "the plan does not name the in-cluster Gitea: {plan}"
        );
        // The env's Flux objects go to its own namespace, made first.
        let own = format!("kindling-{env}");
        let bootstrap = plan["plan"]["bootstrap"].as_array().unwrap();
        for kind in ["GitRepository", "Kustomization", "Secret"] {
            assert!(
                bootstrap
                    .iter()
                    .filter(|o| o["kind"] == kind)
                    .all(|o| o["metadata"]["namespace"] == own.as_str()),
                "{kind} outside {own}: {bootstrap:?}"
            );
        }
        assert!(bootstrap.iter().any(|o| o["kind"] == "GitRepository"));
        assert!(
            bootstrap
                .iter()
                .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == own.as_str())
        );
        let requests = h.api.requests();
        assert!(
            requests
                .iter()
                .any(|r| r.path.ends_with("/selfsubjectaccessreviews"))
        );
        assert!(
            !requests
                .iter()
                .any(|r| matches!(r.method.as_str(), "PATCH" | "DELETE")),
            "a dry run wrote"
        );
        assert!(!h.path("data/envs").join(&env).join("state.json").exists());
        h.api.state.lock().unwrap().denied = vec!["create namespaces".into()];
        error_says(
            &h.create_existing(&env, &["--dry-run"]),
            "create namespaces (cluster-wide): for the env's namespace and the stamp's",
        );
    }

    #[test]
    fn env_existing_needs_a_context_the_kubeconfig_has() {
        let h = Harness::existing("flux", false);
        let kubeconfig = h.path("team-kubeconfig");
        let create = |more: &[&str]| {
            let mut args = vec!["env", "create", "ctx", "--output", "json"];
            args.extend(more);
            h.run(&args, &[])
        };
        error_says(
            &create(&["--provider", "existing"]),
            "--provider existing needs --context NAME",
        );
        error_says(
            &create(&[
                "--provider",
                "existing",
                "--context",
                "prod",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ]),
            "has no context prod (it has: team)",
        );
        error_says(
            &create(&["--context", "team"]),
            "--context is for --provider existing",
        );
        assert!(h.api.requests().is_empty());
    }
}

//! Gitea *in* a cluster kindling did not make (`--provider existing`): a remote cluster cannot
//! reach a container on this laptop, so the env's Gitea runs beside the engine, in the env's
//! own namespace `kindling-ENV`, with its data on a PersistentVolumeClaim. kindling reaches it
//! through a port-forward it opens itself (`crate::kube::forward`); the engine through the
//! Service.
//!
//! The objects follow Gitea's own Helm chart where it matters (gitea.com/gitea/helm-gitea, read through its mirror github.com/project-mirrors/gitea-helm-chart): the pinned
//! Gitea image, configuration by `GITEA__SECTION__KEY` variables (turned into app.ini by the
//! image's `environment-to-ini`), and an init container that runs `gitea migrate` and then
//! creates the admin user, or sets its password when it is there already, from a Secret (the
//! chart's `configure_gitea.sh`). The password is kindling's, generated once and kept in the
//! env's state: it never appears on a command line.

use serde_json::{Value, json};

use super::{ADMIN_USER, HTTP_PORT, REPOSITORY};

/// What an env's namespace on a shared cluster begins with.
pub const NAMESPACE_PREFIX: &str = "kindling-";

/// The env's namespace on a shared cluster: everything kindling runs there for the env.
pub fn namespace(env: &str) -> String {
    format!("{NAMESPACE_PREFIX}{env}")
}

pub const NAME: &str = "gitea";
/// The Secret holding the admin password the init container sets.
pub const ADMIN_SECRET: &str = "gitea-admin";
const DATA_CLAIM: &str = "gitea-data";
/// The uid and gid of the `git` user of the Gitea image.
const GIT_UID: u16 = 1000;
/// Gitea's data volume and paths on it, as the chart sets them for the rootless image
/// (templates/gitea/deployment.yaml: GITEA_APP_INI, GITEA_CUSTOM, GITEA_WORK_DIR, HOME).
const DATA: &str = "/data";

/// The rootless variant of the pinned Gitea image, which the chart runs (`image.rootless:
/// true`): it runs as `git` (1000) from the start, which a cluster's pod security allows
/// where the root image's s6 start is refused.
pub fn image(pinned: &str) -> String {
    if pinned.ends_with("-rootless") || pinned.contains('@') {
        pinned.to_string()
    } else {
        format!("{pinned}-rootless")
    }
}

/// The labels of the Gitea pod, and the selector the port-forward uses.
pub fn pod_labels(env: &str) -> [(&'static str, String); 2] {
    [
        ("app.kubernetes.io/name", NAME.to_string()),
        ("app.kubernetes.io/instance", namespace(env)),
    ]
}

pub fn selector(env: &str) -> String {
    let labels = pod_labels(env);
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::kube::forward::selector_of(&pairs)
}

/// The repository URL as the engine reaches it, through the Service.
pub fn repo_url(env: &str) -> String {
    format!(
        "http://{NAME}.{}.svc.cluster.local:{HTTP_PORT}/{ADMIN_USER}/{REPOSITORY}.git",
        namespace(env)
    )
}

/// Gitea's settings, as the container settings of `crate::gitea::container_spec` (sqlite,
/// installer locked, no registration, no SSH), with the in-cluster address.
fn settings(env: &str) -> Vec<(String, String)> {
    let domain = format!("{NAME}.{}.svc.cluster.local", namespace(env));
    [
        ("database__DB_TYPE", "sqlite3".to_string()),
        ("security__INSTALL_LOCK", "true".into()),
        ("service__DISABLE_REGISTRATION", "true".into()),
        ("server__HTTP_PORT", HTTP_PORT.to_string()),
        ("server__DOMAIN", domain.clone()),
        ("server__ROOT_URL", format!("http://{domain}:{HTTP_PORT}/")),
        ("server__DISABLE_SSH", "true".into()),
        ("server__START_SSH_SERVER", "false".into()),
        ("repository__DEFAULT_BRANCH", "main".into()),
        ("log__LEVEL", "Warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("GITEA__{k}"), v))
    .collect()
}

/// What the init container runs, as the chart's `configure_gitea.sh` does
/// (templates/gitea/init.yaml, read at mirror commit 2d7a0d6, appVersion
/// 1.25.2): app.ini from the variables, `gitea migrate`, then the admin user made, or its
/// password set when it is listed already (the chart's default `passwordMode: keepUpdated`).
fn configure_script() -> String {
    format!(
        "set -eu
environment-to-ini -o \"$GITEA_APP_INI\"
gitea migrate
if gitea admin user list --admin | awk 'NR > 1 {{print $2}}' | grep -qx {ADMIN_USER}; then
  gitea admin user change-password --username {ADMIN_USER} --password \"$ADMIN_PASSWORD\" --must-change-password=false
else
  gitea admin user create --admin --username {ADMIN_USER} --password \"$ADMIN_PASSWORD\" --email {ADMIN_USER}@localhost --must-change-password=false
fi
"
    )
}

/// The Namespace, admin Secret, data claim, Deployment and Service of the env's Gitea.
pub fn objects(env: &str, image: &str, password: &str) -> Vec<Value> {
    let ns = namespace(env);
    let labels: serde_json::Map<String, Value> = pod_labels(env)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let env_vars: Vec<Value> = settings(env)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .chain([
            json!({"name": "GITEA_APP_INI", "value": format!("{DATA}/gitea/conf/app.ini")}),
            json!({"name": "GITEA_CUSTOM", "value": format!("{DATA}/gitea")}),
            json!({"name": "GITEA_WORK_DIR", "value": DATA}),
            json!({"name": "GITEA_TEMP", "value": "/tmp/gitea"}),
            json!({"name": "HOME", "value": format!("{DATA}/gitea/git")}),
        ])
        .collect();
    let mut init_env = env_vars.clone();
    init_env.push(
        json!({"name": "ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": ADMIN_SECRET, "key": "password"}}}),
    );
    let data_mount = json!([{"name": "data", "mountPath": DATA}]);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": ADMIN_SECRET, "namespace": ns},
            "type": "Opaque",
            "stringData": {"username": ADMIN_USER, "password": password},
        }),
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": DATA_CLAIM, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                // One pod at a time on a ReadWriteOnce claim.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"fsGroup": GIT_UID, "runAsUser": GIT_UID, "runAsGroup": GIT_UID},
                        "initContainers": [{
                            "name": "configure-gitea",
                            "image": image,
                            "command": ["/bin/sh", "-c", configure_script()],
                            "env": init_env,
                            "volumeMounts": data_mount,
                        }],
                        "containers": [{
                            "name": NAME,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                            "env": env_vars,
                            // The chart's probes: TCP on the HTTP port.
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 5, "periodSeconds": 10},
                            "livenessProbe": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 200, "periodSeconds": 10, "failureThreshold": 10},
                            "volumeMounts": data_mount,
                        }],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}]},
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_gitea_keeps_its_password_out_of_the_pod_spec_and_its_objects_in_the_env_namespace()
     {
        let objects = objects("dev", "docker.io/gitea/gitea:1.27.0", "s3cret-pw");
        for o in &objects[1..] {
            assert_eq!(o["metadata"]["namespace"], "kindling-dev", "{o}");
        }
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert!(!deployment.to_string().contains("s3cret-pw"));
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert_eq!(secret["stringData"]["password"], "s3cret-pw");
        let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
        assert_eq!(
            service["spec"]["selector"],
            deployment["spec"]["template"]["metadata"]["labels"]
        );
        assert_eq!(
            selector("dev"),
            "app.kubernetes.io/instance=kindling-dev,app.kubernetes.io/name=gitea"
        );
        assert_eq!(
            repo_url("dev"),
            "http://gitea.kindling-dev.svc.cluster.local:3000/kindling/source.git"
        );
    }
}

//! The harness of the env flow tests (tests/env_*.rs): the real binary against the real
//! Docker engine, fake kind/k3d CLIs that start real node containers, a fake Gitea (recorded
//! REST payloads + real `git http-backend`), and the in-memory Kubernetes API with controllers
//! that play Flux and Argo CD (fluxcd/kustomize-controller, argoproj/argo-cd: the behaviours
//! each plays are cited where it plays them).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use super::fake_gitea::FakeGitea;
use super::kube_api::{FakeApi, Stored, builtin_controllers};
use super::{
    TEST_IMAGE, TEST_REGISTRY_IMAGE, copy_tree, docker_cli, docker_labelled, ensure_test_image,
    ensure_test_registry_image, hostk8s_dir, repo_dir, schemas_dir,
};

pub const PASSWORD: &str = "fake-gitea-admin-password";

/// The commit `main` of a bare repository points at.
pub fn repo_head(repo: &Path) -> Option<String> {
    std::process::Command::new("git")
        .args(["rev-parse", "--verify", "-q", "refs/heads/main"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Where the controllers read the pushed head from: a bare repository on the host (the
/// fake Gitea server) or inside the Gitea container of the env named in the cell.
#[derive(Clone)]
pub enum Head {
    Repo(PathBuf),
    Container(std::sync::Arc<std::sync::Mutex<String>>),
    /// The Giteas an existing cluster runs, one per env namespace (`Harness::existing`).
    InCluster(super::fake_pods::InClusterGiteas),
}

impl Head {
    /// The head of the env repository a GitRepository's `url` names, when each env has a
    /// Gitea of its own (`Some(None)`: nothing pushed there yet); None: there is one head.
    pub fn read_for_url(&self, url: &str) -> Option<Option<String>> {
        match self {
            Head::InCluster(giteas) => Some(giteas.repository_of(url).and_then(|r| repo_head(&r))),
            _ => None,
        }
    }

    /// The head of another repository of the same Gitea user (an idpbuilder package's, at
    /// `url`), `None` when it has none. Only the fake Gitea servers' repositories are read;
    /// with a Gitea per env, that of the env whose Gitea `url` names.
    pub fn read_repository(&self, url: &str, name: &str) -> Option<String> {
        match self {
            Head::Repo(repo) => repo_head(&repo.with_file_name(format!("{name}.git"))),
            Head::InCluster(giteas) => {
                repo_head(&giteas.user_dir_of(url)?.join(format!("{name}.git")))
            }
            Head::Container(_) => None,
        }
    }

    /// The tree of `commit` into `dir`, as source-controller's artifact unpacks it. The commit
    /// may be in any repository of the user (the env's or a package's).
    pub fn extract(&self, commit: &str, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let mut archive = match self {
            Head::Repo(_) | Head::InCluster(_) => {
                let user_dirs = match self {
                    Head::Repo(repo) => vec![repo.parent().unwrap().to_path_buf()],
                    Head::InCluster(giteas) => giteas.user_dirs(),
                    Head::Container(_) => unreachable!(),
                };
                let holder = user_dirs
                    .iter()
                    .flat_map(std::fs::read_dir)
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .find(|r| {
                        std::process::Command::new("git")
                            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
                            .current_dir(r)
                            .output()
                            .is_ok_and(|o| o.status.success())
                    })
                    .unwrap_or_else(|| user_dirs[0].clone());
                let mut c = std::process::Command::new("git");
                c.args(["archive", "--format=tar", commit])
                    .current_dir(holder);
                c
            }
            Head::Container(name) => {
                let name = name.lock().unwrap().clone();
                let mut c = std::process::Command::new("docker");
                c.args([
                    "exec",
                    &name,
                    "git",
                    "--git-dir=/data/git/kindling/source.git",
                    "archive",
                    "--format=tar",
                    commit,
                ]);
                c
            }
        };
        let mut tar = archive
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = std::process::Command::new("tar")
            .args(["-x", "-C"])
            .arg(dir)
            .stdin(tar.stdout.take().unwrap())
            .status()
            .unwrap();
        let archived = tar.wait().unwrap();
        assert!(
            archived.success() && status.success(),
            "extracting {commit}"
        );
    }

    pub fn read(&self) -> Option<String> {
        match self {
            Head::Repo(repo) => repo_head(repo),
            // Any env's: whether something was pushed at all (each GitRepository reads its
            // own, `read_for_url`).
            Head::InCluster(giteas) => giteas
                .user_dirs()
                .iter()
                .find_map(|d| repo_head(&d.join("source.git"))),
            Head::Container(name) => {
                let name = name.lock().unwrap().clone();
                let out = docker_cli(&[
                    "exec",
                    &name,
                    "git",
                    "--git-dir=/data/git/kindling/source.git",
                    "rev-parse",
                    "--verify",
                    "-q",
                    "refs/heads/main",
                ]);
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
        }
    }
}

/// The Flux controllers over the pushed repository (tests/common/fake_flux.rs).
pub fn flux_controller(repo: Head) -> impl FnMut(&mut Vec<Stored>) + Send {
    super::fake_flux::FluxModel::new(repo).controller()
}

/// A container's IPv4 address on a Docker network (empty when it is not attached).
pub fn container_address(container: &str, network: &str) -> String {
    let out = docker_cli(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fake provider CLI `name` in `bin`, with a kubeconfig template (`NAME` replaced by the
/// cluster) whose context `<context>-NAME` points at the fake API.
/// A script file the tests put on PATH.
pub fn write_executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn install_fake_cli(bin: &Path, name: &str, context: &str, api_url: &str, script: &str) {
    std::fs::create_dir_all(bin).unwrap();
    let c = format!("{context}-NAME");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {api_url}\ncontexts:\n- name: {c}\n  context:\n    cluster: {c}\n    user: {c}\ncurrent-context: {c}\nusers:\n- name: {c}\n  user:\n    token: fake\n"
    );
    std::fs::write(bin.join(format!("{name}-kubeconfig.template")), kubeconfig).unwrap();
    write_executable(&bin.join(name), script);
}

/// Shell helpers of the fake kind and k3d for the user's kubeconfig: the real kubectl (the
/// first PATH entry is the harness's bin, whose kubectl is a forbidden-call shim) on the file
/// kind and k3d merge into (`$KUBECONFIG`, which the harness points at a file of its own).
const KUBECONFIG_HELPERS: &str = r#"real_kubectl=$(PATH="${PATH#*:}" command -v kubectl) || { echo "fake: no kubectl on PATH" >&2; exit 3; }
kcfg=${KUBECONFIG:-$HOME/.kube/config}
kc() { "$real_kubectl" --kubeconfig "$kcfg" config "$@" >/dev/null 2>&1; }
kc_out() { "$real_kubectl" --kubeconfig "$kcfg" config "$@" 2>/dev/null; }"#;

pub fn fake_k3d(bin: &Path, api_url: &str) {
    let script = format!(
        r#"#!/bin/sh
here=$(dirname "$0")
{KUBECONFIG_HELPERS}
echo "$*" >> "$here/k3d-calls"
touch "$here/k3d-clusters"
case "$1 $2" in
  "cluster list")
printf '['; sep=''; while read -r c; do printf '%s{{"name":"%s","nodes":[]}}' "$sep" "$c"; sep=','; done < "$here/k3d-clusters"; printf ']\n' ;;
  "cluster create")
name=$(sed -n 's/^  name: //p' "$4" | head -1)
docker network create "k3d-$name" >/dev/null 2>&1
label=$(sed -n 's/^    - label: \(dev.kindling.env=.*\)$/\1/p' "$4" | head -1)
# The config's volumes for server 0 (nodeFilters server:*, server:0 or all), which
# pkg/runtimes/docker/translate.go hands Docker as binds (SRC:DEST[:MODE]).
volumes=$(awk '
  /^[A-Za-z]/ {{ section = $1 }}
  section == "volumes:" && /^- volume:/ {{ v = $3 }}
  section == "volumes:" && v != "" && /^  - (server:\*|server:0|all)$/ {{ printf "--volume=%s ", v; v = "" }}
' "$4")
# pkg/types/types.go (LabelClusterName, LabelRole) and pkg/runtimes/docker/translate.go
# (restart policy unless-stopped).
docker run -d --name "k3d-$name-server-0" --label k3d.cluster="$name" --label k3d.role=server --label "$label" --restart unless-stopped --network "k3d-$name" $volumes {TEST_IMAGE} sleep 1000000 >/dev/null || exit 1
# cmd/cluster/clusterCreate.go (k3d-io/k3d v5.9.0): merged into the default kubeconfig
# (`k3d-NAME`, user `admin@k3d-NAME`), made current only with kubeconfig.switchCurrentContext.
kc set-cluster "k3d-$name" --server=https://127.0.0.1:6443
kc set-credentials "admin@k3d-$name" --token=fake
kc set-context "k3d-$name" --cluster="k3d-$name" --user="admin@k3d-$name"
if grep -q 'switchCurrentContext: true' "$4"; then kc use-context "k3d-$name"; fi
echo "$name" >> "$here/k3d-clusters" ;;
  "cluster delete")
# pkg/client/kubeconfig.go KubeconfigRemoveCluster: entries removed; when it was current,
# another context (whichever the map yields first) becomes current, or none is left.
cur=$(kc_out current-context)
kc delete-context "k3d-$3" || true; kc delete-cluster "k3d-$3" || true; kc delete-user "admin@k3d-$3" || true
if [ "$cur" = "k3d-$3" ]; then
  other=$(kc_out get-contexts -o name | head -1)
  if [ -n "$other" ]; then kc use-context "$other"; else kc unset current-context; fi
fi
docker rm -f "k3d-$3-server-0" >/dev/null 2>&1
docker network rm "k3d-$3" >/dev/null 2>&1
grep -vx "$3" "$here/k3d-clusters" > "$here/k3d-clusters.$$"; mv "$here/k3d-clusters.$$" "$here/k3d-clusters" ;;
  "kubeconfig get") sed "s/NAME/$3/g" "$here/k3d-kubeconfig.template" ;;
  "image import")
# cmd/image/imageImport.go, pkg/client/tools.go (k3d v5.9.0): `image import FILE --cluster
# NAME --mode direct` streams FILE into `ctr image import --all-platforms -` of each server
# and agent node (not the load balancer). The test nodes have no containerd: each keeps the
# archive it was given under /var/lib/fake-ctr.
[ "$6" = "--mode" ] && [ "$7" = "direct" ] || {{ echo "fake k3d: expected --mode direct: $*" >&2; exit 2; }}
for n in $(docker ps -a --filter "label=k3d.cluster=$5" --filter "label=k3d.role=server" --format '{{{{.Names}}}}') $(docker ps -a --filter "label=k3d.cluster=$5" --filter "label=k3d.role=agent" --format '{{{{.Names}}}}'); do
  docker exec -i "$n" sh -c 'mkdir -p /var/lib/fake-ctr && cat > /var/lib/fake-ctr/import-$$.tar' < "$3" || {{ echo "ERRO failed to import images in node '$n'" >&2; exit 1; }}
done ;;
  "node list")
printf '['; sep=''; while read -r c; do printf '%s{{"name":"k3d-%s-server-0","role":"server","runtimeLabels":{{"k3d.cluster":"%s"}}}}' "$sep" "$c" "$c"; sep=','; done < "$here/k3d-clusters"; printf ']\n' ;;
  # cmd/root.go (k3d-io/k3d v5.9.0): "k3d version %s\nk3s version %s (default)".
  "version "*) printf 'k3d version v5.9.0\nk3s version v1.37.1-k3s1 (default)\n' ;;
  *) echo "fake k3d: unexpected $*" >&2; exit 2 ;;
esac
"#
    );
    install_fake_cli(bin, "k3d", "k3d", api_url, &script);
}

/// The `kind` network every fake kind cluster joins, made once: fake kind CLIs starting
/// side by side would each create it, and Docker allows two networks of one name.
pub fn ensure_kind_network() {
    static MADE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let ids = docker_cli(&["network", "ls", "-q", "--filter", "name=^kind$"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        match ids.len() {
            0 => assert!(docker_cli(&["network", "create", "kind"]).status.success()),
            1 => {}
            // Left by an earlier run that raced: keep one.
            _ => {
                for id in &ids[1..] {
                    docker_cli(&["network", "rm", id]);
                }
            }
        }
    });
}

pub struct Harness {
    /// With a Gitea container (the test image) instead of the external fake: the env whose
    /// container the controllers read from.
    pub docker_gitea: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    pub dir: tempfile::TempDir,
    pub api: FakeApi,
    pub gitea: FakeGitea,
    /// The fake Flux's Ready transitions (empty with Argo CD).
    pub flux_log: super::fake_flux::TransitionLog,
    /// The child Applications the fake Argo CD created, by wave (empty with Flux).
    pub argo_log: super::fake_argo::WaveLog,
    /// A cluster kindling did not make (`Harness::existing`): Gitea runs in it, so no
    /// `KINDLING_GITEA_URL`; the admin password its init container set.
    pub in_cluster_gitea: Option<super::fake_pods::AdminPassword>,
    /// What the fake engines' chart fetches go through (a TLS-intercepting proxy, when set).
    pub internet: super::fake_cluster::Internet,
}

/// kindling talks to the cluster through its API, never through these CLIs (README: "no
/// flux/argocd/helm/kubectl CLI"): first on the PATH the binary runs with, each records that it
/// was called and fails.
pub fn forbidden_clis(bin: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    for name in ["kubectl", "flux", "helm", "argocd"] {
        write_executable(
            &bin.join(name),
            &format!(
                "#!/bin/sh\necho \"{name} $*\" >> \"$(dirname \"$0\")/forbidden-calls\"\nexit 1\n"
            ),
        );
    }
}

/// The kustomize CLI (`kustomize build DIR`, which `env apply` and `env diff` run), played by
/// the kustomize that kubectl embeds: `kubectl kustomize DIR` is kustomize's own build
/// (kubernetes/kubectl pkg/cmd/kustomize runs sigs.k8s.io/kustomize/api krusty), so a
/// kustomization builds here as kustomize v5 builds it. The real kubectl is found past the
/// harness's bin, whose kubectl is the forbidden-call shim.
pub fn kustomize_cli(bin: &Path) {
    write_executable(
        &bin.join("kustomize"),
        "#!/bin/sh
[ \"$1\" = build ] || { echo \"fake kustomize: only build is modelled\" >&2; exit 2; }
shift
real=$(PATH=\"${PATH#*:}\" command -v kubectl) || { echo \"fake kustomize: no kubectl\" >&2; exit 3; }
exec \"$real\" kustomize \"$@\"
",
    );
}

/// The OpenSSH client as kindling's tunnel to a remote Docker host runs it (`ssh -N -T -o … -L
/// 127.0.0.1:P:127.0.0.1:P … DEST`, which stays in the foreground until killed). The engine
/// here is this machine's, so its ports are reachable already and the fake forwards nothing:
/// it records its arguments (`bin/ssh-calls`) and stays up, as a tunnel does.
pub fn fake_ssh(bin: &Path) {
    write_executable(
        &bin.join("ssh"),
        r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/ssh-calls"
trap 'kill $! 2>/dev/null; exit 0' TERM
sleep 300 &
wait
"#,
    );
}

/// A Ready node, as the API of a cluster whose nodes came up.
pub fn with_ready_node(api: &FakeApi) {
    api.update(|objects| {
        objects.push(Stored {
            group_version: "v1".into(),
            plural: "nodes".into(),
            namespace: None,
            name: "node".into(),
            object: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kindling-control-plane"},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}}),
        });
    });
}

/// kind as kubernetes-sigs/kind v0.33.0 behaves where kindling relies on it:
/// - `get clusters` lists the cluster label of every node container, running or not
///   (pkg/cluster/internal/providers/docker/provider.go, ListClusters), so a cluster whose
///   create is still under way is listed;
/// - `create cluster` refuses a name that has nodes ("node(s) already exist for a cluster
///   with the name", pkg/cluster/internal/create/create.go alreadyExists), provisions the node
///   containers first and only then runs kubeadm (the long part; `bin/slow-create` makes it
///   take 3 s), and removes the nodes when it fails;
/// - `get kubeconfig` reads the node's admin.conf, which exists only once kubeadm init is
///   done (pkg/cluster/internal/kubeconfig/kubeconfig.go): before that it fails. The fake
///   keeps the finished clusters in `bin/clusters`;
/// - one container per node of the config, named as kind's namer does (`NAME-control-plane`,
///   `NAME-control-plane2`, `NAME-worker`, …, pkg/cluster/internal/providers/common/namer.go)
///   and labelled with its role (`io.x-k8s.kind.role`); with more than one control plane also
///   `NAME-external-load-balancer` (role `external-load-balancer`, an Envoy image since kind
///   v0.32, pkg/cluster/internal/loadbalancer/const.go), which runs no containerd;
/// - `get nodes` lists every container of the cluster, load balancer included, one name per
///   line (pkg/cmd/kind/get/nodes/nodes.go; ListNodes filters on the cluster label only);
/// - the nodes go on the network `KIND_EXPERIMENTAL_DOCKER_NETWORK` names (with two warnings
///   on stderr), else on `kind`; the network is used as found, created only when missing, and
///   never removed by `delete cluster` (pkg/cluster/internal/providers/docker/provider.go
///   Provision, network.go ensureNetwork).
pub fn fake_kind(bin: &Path, api_url: &str) {
    let script = format!(
        r#"#!/bin/sh
here=$(dirname "$0")
{KUBECONFIG_HELPERS}
echo "$*" >> "$here/kind-calls"
touch "$here/clusters"
case "$1 $2" in
  "get clusters") docker ps -a --filter label=io.x-k8s.kind.cluster --format '{{{{.Label "io.x-k8s.kind.cluster"}}}}' | sort -u ;;
  "create cluster")
name=$4
if docker ps -a --filter "label=io.x-k8s.kind.cluster=$name" --format '{{{{.Names}}}}' | grep -q .; then
  echo "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"$name\"" >&2; exit 1
fi
if [ -e "$here/fail-create" ]; then echo "ERROR: failed to create cluster: node did not become ready" >&2; exit 1; fi
# The engine kind was pointed at (it runs the docker CLI, which honours DOCKER_HOST).
echo "${{DOCKER_HOST:-}}" > "$here/kind-docker-host"
net=kind
if [ -n "${{KIND_EXPERIMENTAL_DOCKER_NETWORK:-}}" ]; then
  echo "WARNING: Overriding docker network due to KIND_EXPERIMENTAL_DOCKER_NETWORK" >&2
  echo "WARNING: Here be dragons! This is not supported currently." >&2
  net=$KIND_EXPERIMENTAL_DOCKER_NETWORK
fi
echo "$net" > "$here/kind-network"
docker network inspect "$net" >/dev/null 2>&1 || docker network create "$net" >/dev/null 2>&1
config=$6
# generateMountBindings (provision.go): the extraMounts of the config's node number $1 as
# --volume=HOST:CONTAINER[:ro].
mounts() {{
  awk -v want="$1" '
    function flush() {{ if (host != "") printf "--volume=%s:%s%s ", host, path, ro; host = ""; path = ""; ro = "" }}
    /^[A-Za-z]/ {{ if (n == want) flush(); section = ""; innodes = ($1 == "nodes:"); next }}
    /^- role:/ && innodes {{ if (n == want) flush(); n++; section = ""; next }}
    n == want && /^  [A-Za-z]+:/ {{ section = $1; next }}
    n == want && section == "extraMounts:" && /^  - / {{ flush(); sub(/^  - /, "    ") }}
    n == want && section == "extraMounts:" {{ if ($1 == "hostPath:") host = $2; if ($1 == "containerPath:") path = $2; if ($1 == "readOnly:" && $2 == "true") ro = ":ro" }}
    END {{ if (n == want) flush() }}
  ' "$config"
}}
# pkg/cluster/internal/providers/docker/provision.go: the cluster and role labels,
# --restart=on-failure:1 (back after a reboot, not after `docker stop`), and the node's
# extraMounts (the load balancer, not a node of the config, gets none).
node() {{
  docker run -d --name "$name-$1" --hostname "$name-$1" --label io.x-k8s.kind.cluster="$name" --label io.x-k8s.kind.role="$2" --restart=on-failure:1 --network "$net" $(mounts "$3") {TEST_IMAGE} sleep 1000000 >/dev/null || exit 1
}}
cps=$(grep -c '^- role: control-plane' "$6"); workers=$(grep -c '^- role: worker' "$6")
[ "$cps" -gt 1 ] && node external-load-balancer external-load-balancer 0
i=1; while [ "$i" -le "$cps" ]; do if [ "$i" -eq 1 ]; then node control-plane control-plane "$i"; else node "control-plane$i" control-plane "$i"; fi; i=$((i + 1)); done
i=1; while [ "$i" -le "$workers" ]; do if [ "$i" -eq 1 ]; then node worker worker $((cps + i)); else node "worker$i" worker $((cps + i)); fi; i=$((i + 1)); done
if [ -e "$here/slow-create" ]; then sleep 3; fi
# Last, kind merges the cluster's context into the user's kubeconfig and makes it current
# (pkg/cluster/internal/kubeconfig/internal/kubeconfig/merge.go; no flag turns that off).
kc set-cluster "kind-$name" --server=https://127.0.0.1:6443
kc set-credentials "kind-$name" --token=fake
kc set-context "kind-$name" --cluster="kind-$name" --user="kind-$name"
kc use-context "kind-$name"
echo "$name" >> "$here/clusters" ;;
  "delete cluster")
name=$4
# remove.go: the cluster's entries go; current-context is cleared only if it named them.
cur=$(kc_out current-context)
kc delete-context "kind-$name" || true; kc delete-cluster "kind-$name" || true; kc delete-user "kind-$name" || true
if [ "$cur" = "kind-$name" ]; then kc unset current-context; fi
docker ps -aq --filter "label=io.x-k8s.kind.cluster=$name" | xargs -r docker rm -f >/dev/null 2>&1
grep -vx "$name" "$here/clusters" > "$here/clusters.$$"; mv "$here/clusters.$$" "$here/clusters" ;;
  "get kubeconfig")
if ! grep -qx "$4" "$here/clusters"; then
  echo "ERROR: failed to get cluster internal kubeconfig: command \"docker exec --privileged $4-control-plane cat /etc/kubernetes/admin.conf\" failed with error: exit status 1" >&2; exit 1
fi
# A cluster with an API server of its own (bin/api-NAME), else the harness's.
if [ -e "$here/api-$4" ]; then sed "s/NAME/$4/g; s#server: .*#server: $(cat "$here/api-$4")#" "$here/kind-kubeconfig.template"
else sed "s/NAME/$4/g" "$here/kind-kubeconfig.template"; fi ;;
  "get nodes") docker ps -a --filter "label=io.x-k8s.kind.cluster=$4" --format '{{{{.Names}}}}' ;;
  "load image-archive")
# pkg/cmd/kind/load/image-archive/image-archive.go: `load image-archive FILE --name NAME`
# streams FILE into every internal node (ListInternalNodes: not the load balancer), each
# running `ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=… -`
# (pkg/cluster/nodeutils/util.go LoadImageArchive). The test nodes have no containerd: each
# keeps the archive it was given under /var/lib/fake-ctr.
[ -f "$3" ] || {{ echo "ERROR: failed to load image: open $3: no such file or directory" >&2; exit 1; }}
nodes=$(docker ps -a --filter "label=io.x-k8s.kind.cluster=$5" --format '{{{{.Names}}}}' | grep -v -- '-external-load-balancer$')
[ -n "$nodes" ] || {{ echo "ERROR: no nodes found for cluster \"$5\"" >&2; exit 1; }}
for n in $nodes; do
  docker exec -i "$n" sh -c 'mkdir -p /var/lib/fake-ctr && cat > /var/lib/fake-ctr/import-$$.tar' < "$3" || {{ echo "ERROR: failed to load image: command \"docker exec --privileged -i $n ctr --namespace=k8s.io images import\" failed" >&2; exit 1; }}
done ;;
  # pkg/cmd/kind/version/version.go: "kind v" + version + " " + Go version + " " + GOOS/GOARCH.
  "version "*|version) echo "kind $(cat "$here/kind-version" 2>/dev/null || echo v0.33.0) go1.26.1 linux/amd64" ;;
  *) echo "fake kind: unexpected $*" >&2; exit 2 ;;
esac
"#
    );
    install_fake_cli(bin, "kind", "kind", api_url, &script);
}

/// A Flux-shaped install manifest (real CRDs + a controller Deployment) under the pinned
/// file name, for `--manifests-dir`.
pub fn manifests_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let crd = |f: &str| std::fs::read_to_string(schemas_dir().join(f)).unwrap();
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: flux-system}}\n---\n{}\n---\n{}\n---\n{}\n---\n{}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: kustomize-controller, namespace: flux-system}}\nspec: {{}}\n",
        crd("flux-source.toolkit.fluxcd.io_gitrepositories.yaml"),
        crd("flux-source.toolkit.fluxcd.io_helmrepositories.yaml"),
        crd("flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
        crd("flux-helm.toolkit.fluxcd.io_helmreleases.yaml"),
    );
    let name = kindling::engine::manifests::pinned(kindling::engine::Engine::Flux).file_name();
    std::fs::write(dir.join(name), text).unwrap();
    // Argo CD's manifest names no namespace; kindling puts it into `argocd`. As install.yaml
    // (argo-cd v3.5.1) has them: argocd-cmd-params-cm empty, ahead of the workloads, which
    // read `application.namespaces` from it.
    let argo = format!(
        "{}\n---\n{}\n---\n{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cmd-params-cm}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: argocd-server}}\nspec: {{}}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: argocd-application-controller}}\nspec: {{replicas: 1, template: {{spec: {{containers: [{{name: argocd-application-controller, image: quay.io/argoproj/argocd:v3.5.1, args: [/usr/local/bin/argocd-application-controller], env: [{{name: ARGOCD_APPLICATION_NAMESPACES, valueFrom: {{configMapKeyRef: {{key: application.namespaces, name: argocd-cmd-params-cm, optional: true}}}}}}]}}]}}}}}}\n",
        crd("argocd-application-crd.yaml"),
        // install.yaml (argo-cd v3.5.1) installs the ApplicationSet and AppProject CRDs too.
        crd("argocd-applicationset-crd.yaml"),
        crd("argocd-appproject-crd.yaml")
    );
    let name = kindling::engine::manifests::pinned(kindling::engine::Engine::Argo).file_name();
    std::fs::write(dir.join(name), argo).unwrap();
    // The Gateway API add-on's: one of its CRDs, as config/crd/standard/ of
    // kubernetes-sigs/gateway-api v1.6.1 names it (the real file is megabytes of schema).
    let gateway = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gatewayclasses.gateway.networking.k8s.io\n  annotations: {gateway.networking.k8s.io/bundle-version: v1.6.1, gateway.networking.k8s.io/channel: standard}\nspec:\n  group: gateway.networking.k8s.io\n  names: {kind: GatewayClass, listKind: GatewayClassList, plural: gatewayclasses, singular: gatewayclass}\n  scope: Cluster\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n";
    let name = kindling::addons::Addon::GatewayApi.parts()[0]
        .manifest()
        .unwrap()
        .file_name();
    std::fs::write(dir.join(name), gateway).unwrap();
}

/// Whatever a test leaves behind when it fails half-way (a panic skips its `delete_clean`) is
/// removed when its harness goes: every object labelled with the harness's data dir, and the
/// node containers and networks of the clusters its fake kind and k3d made. After a
/// successful test there is nothing left to find.
impl Drop for Harness {
    fn drop(&mut self) {
        let label = format!("label={}", self.data_label());
        let mut containers = Vec::new();
        let listed = docker_cli(&["ps", "-aq", "--filter", &label]);
        containers.extend(
            String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        let calls =
            |file: &str| std::fs::read_to_string(self.path("bin").join(file)).unwrap_or_default();
        let mut networks = Vec::new();
        for line in calls("kind-calls").lines() {
            if let Some(name) = line.strip_prefix("create cluster --name ") {
                let name = name.split_whitespace().next().unwrap_or_default();
                let filter = format!("label=io.x-k8s.kind.cluster={name}");
                let nodes = docker_cli(&["ps", "-aq", "--filter", &filter]);
                containers.extend(
                    String::from_utf8_lossy(&nodes.stdout)
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
        }
        for name in calls("k3d-clusters").lines() {
            containers.push(format!("k3d-{name}-server-0"));
            networks.push(format!("k3d-{name}"));
        }
        // A test's own set of shared caches (KINDLING_CACHE_PREFIX, recorded in `cache-prefix`).
        let prefix = std::fs::read_to_string(self.path("cache-prefix")).unwrap_or_default();
        let set = format!("label=dev.kindling.cache.set={}", prefix.trim());
        if !prefix.trim().is_empty() {
            let caches = docker_cli(&["ps", "-aq", "--filter", &set]);
            containers.extend(
                String::from_utf8_lossy(&caches.stdout)
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            let _ = docker_cli(&args);
        }
        let mut filters = vec![label.clone()];
        if !prefix.trim().is_empty() {
            filters.push(set.clone());
        }
        for filter in &filters {
            let volumes = docker_cli(&["volume", "ls", "-q", "--filter", filter]);
            for v in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
                let _ = docker_cli(&["volume", "rm", "-f", v]);
            }
            let labelled = docker_cli(&["network", "ls", "-q", "--filter", filter]);
            networks.extend(
                String::from_utf8_lossy(&labelled.stdout)
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
        for n in networks {
            let _ = docker_cli(&["network", "rm", &n]);
        }
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_engine("flux")
    }

    pub fn with_engine(engine: &str) -> Harness {
        Harness::build(engine, false)
    }

    /// With `hostk8s`, the source is a copy of the HostK8s fixture repository
    /// (`software/stacks/sample`), run unchanged; otherwise kindling's sample stamp.
    pub fn build(engine: &str, hostk8s: bool) -> Harness {
        Harness::build_with(engine, hostk8s, false)
    }

    pub fn build_with(engine: &str, hostk8s: bool, docker_gitea: bool) -> Harness {
        ensure_kind_network();
        ensure_test_image();
        ensure_test_registry_image();
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        if hostk8s {
            copy_tree(&hostk8s_dir().join("software"), &source.join("software"));
        } else {
            copy_tree(
                &repo_dir().join("stamps/sample"),
                &source.join("stamps/sample"),
            );
        }
        let gitea = FakeGitea::start("kindling", PASSWORD);
        let cell = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let repo = if docker_gitea {
            super::ensure_test_gitea_image();
            Head::Container(cell.clone())
        } else {
            Head::Repo(gitea.root.join("kindling/source.git"))
        };
        let internet = super::fake_cluster::Internet::default();
        let flux = super::fake_flux::FluxModel::new(repo.clone()).behind(internet.clone());
        let flux_log = flux.log();
        let argo = super::fake_argo::ArgoModel::new(repo).behind(internet.clone());
        let argo_log = argo.log();
        let api = match engine {
            "argo" => FakeApi::start(Some(Box::new(argo.controller()))),
            _ => FakeApi::start(Some(Box::new(flux.controller()))),
        };
        with_ready_node(&api);
        fake_kind(&dir.path().join("bin"), &api.url);
        forbidden_clis(&dir.path().join("bin"));
        kustomize_cli(&dir.path().join("bin"));
        fake_ssh(&dir.path().join("bin"));
        fake_k3d(&dir.path().join("bin"), &api.url);
        manifests_dir(&dir.path().join("manifests"));
        // Each harness starts its registry ports elsewhere: tests run side by side.
        let registry_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.path().join("profile.yaml"),
            format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: test}}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 18080, https: 18443}}\n  registry: true\n  registryPort: {registry_port}\n  imageCaches: false\n"),
        )
        .unwrap();
        Harness {
            docker_gitea: docker_gitea.then_some(cell),
            dir,
            api,
            gitea,
            flux_log,
            argo_log,
            internet,
            in_cluster_gitea: None,
        }
    }

    /// A cluster that exists already (a team's), for `--provider existing`: its API server
    /// (with the engine fakes and the fake kubelet running kindling's in-cluster Gitea pod),
    /// reached through the context `team` of the kubeconfig at `path("team-kubeconfig")`.
    /// Nothing on it is kindling's; `engine_installed` puts an engine there first.
    pub fn existing(engine: &str, engine_installed: bool) -> Harness {
        let mut h = Harness::build(engine, false);
        let (gitea, admin) = FakeGitea::in_pod("kindling");
        let giteas = super::fake_pods::InClusterGiteas::new(&gitea, admin.clone());
        let repo = Head::InCluster(giteas.clone());
        let mut flux = super::fake_flux::FluxModel::new(repo.clone())
            .behind(h.internet.clone())
            .controller();
        let mut argo = super::fake_argo::ArgoModel::new(repo)
            .behind(h.internet.clone())
            .controller();
        let argo_engine = engine == "argo";
        let api = FakeApi::start(Some(Box::new(move |objects: &mut Vec<Stored>| {
            super::fake_pods::run_gitea_pods(objects, &giteas);
            match argo_engine {
                true => argo(objects),
                false => flux(objects),
            }
        })));
        with_ready_node(&api);
        api.write_kubeconfig(&h.path("team-kubeconfig"), "team");
        if engine_installed {
            install_engine_as_found(&api, engine);
        }
        h.api = api;
        h.gitea = gitea;
        h.in_cluster_gitea = Some(admin);
        h
    }

    /// `COMMAND… --provider existing --context team --kubeconfig … MORE… --output json`: a
    /// command on the team's cluster of `Harness::existing`.
    pub fn run_on_team(&self, command: &[&str], more: &[&str]) -> Output {
        let kubeconfig = self.path("team-kubeconfig");
        let mut args = command.to_vec();
        args.extend([
            "--provider",
            "existing",
            "--context",
            "team",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]);
        args.extend(more);
        args.extend(["--output", "json"]);
        self.run(&args, &[])
    }

    /// `env create ENV --stamp sample` on the team's cluster.
    pub fn create_existing(&self, env: &str, more: &[&str]) -> Output {
        self.run_on_team(&["env", "create", env, "--stamp", "sample"], more)
    }

    /// An API server (with the Flux controller over `gitea`'s repository) of the kind cluster
    /// `cluster` alone, so envs side by side each have a cluster of their own.
    pub fn own_api(&self, cluster: &str, gitea: &FakeGitea) -> FakeApi {
        let repo = Head::Repo(gitea.root.join("kindling/source.git"));
        let api = FakeApi::start(Some(Box::new(flux_controller(repo))));
        with_ready_node(&api);
        std::fs::write(self.path("bin").join(format!("api-{cluster}")), &api.url).unwrap();
        api
    }

    /// A live process holding the env's lock, as another kindling would (the lock names its
    /// pid and command, as `crate::lock` writes it). Kill it to let go.
    pub fn hold_lock(&self, env: &str, command: &str) -> std::process::Child {
        // Another kindling holding the env: the flock(2) on its lock file (util-linux flock(1)
        // takes the same kind of lock as kindling does), and its pid and command in the file.
        let lock = self.path("data/envs").join(env).join("lock");
        let holder = std::process::Command::new("flock")
            .arg("--close")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock(1) from util-linux");
        wait_until(
            "the lock holder to take the lock",
            std::time::Duration::from_secs(10),
            || {
                // `flock -n` fails (exit 1) while someone else holds it.
                std::process::Command::new("flock")
                    .args(["-n"])
                    .arg(&lock)
                    .arg("true")
                    .status()
                    .is_ok_and(|s| !s.success())
            },
        );
        std::fs::write(&lock, format!("{} {command}\n", holder.id())).unwrap();
        holder
    }

    /// The `dev.kindling.data=…` label of objects this harness's data dir makes.
    pub fn data_label(&self) -> String {
        format!(
            "{}={}",
            kindling::docker::DATA_LABEL,
            kindling::docker::data_dir_id(&self.path("data"))
        )
    }

    /// Adds an application to the sample stamp: `entry` is its line under `applications`
    /// (flow style), `manifest` the one file of `applications/DIR`.
    pub fn add_sample_application(&self, entry: &str, dir: &str, manifest: &str) {
        let dir = self.path(&format!("source/stamps/sample/applications/{dir}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.yaml"), manifest).unwrap();
        let file = self.path("source/stamps/sample/stamp.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let added = text.replacen(
            "  applications:\n",
            &format!("  applications:\n    - {entry}\n"),
            1,
        );
        assert_ne!(added, text);
        std::fs::write(&file, added).unwrap();
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.args(args)
            .current_dir(self.path("source"))
            .env("PATH", path)
            .env("CI", "true")
            .env("KINDLING_DATA_DIR", self.path("data"))
            .env("KINDLING_CACHE_DIR", self.path("cache"))
            .env("KINDLING_REGISTRY_IMAGE", TEST_REGISTRY_IMAGE)
            .env("KINDLING_MANIFESTS_DIR", self.path("manifests"))
            // The fake API's stand-in manifests are not the pinned releases.
            .env("KINDLING_MANIFESTS_MODIFIED", "1")
            // The Gateway API add-on's release publishes no sum to check the stand-in against.
            .env("KINDLING_TRUST_MANIFESTS", "1")
            .env("KINDLING_STEP_TIMEOUT", "30")
            .env("KINDLING_POLL_MS", "100")
            .env("KINDLING_LOCK_WAIT", "0")
            // The user's kubeconfig, where the fake kind and k3d merge their contexts.
            .env("KUBECONFIG", self.path("user-kubeconfig"))
            .env_remove("KINDLING_FAIL_AT");
        if self.in_cluster_gitea.is_some() {
            cmd.env_remove("KINDLING_GITEA_URL");
        } else if self.docker_gitea.is_some() {
            cmd.env("KINDLING_GITEA_IMAGE", super::TEST_GITEA_IMAGE)
                .env_remove("KINDLING_GITEA_URL");
        } else {
            cmd.env("KINDLING_GITEA_URL", &self.gitea.url)
                .env("KINDLING_GITEA_PASSWORD", PASSWORD)
                .env(
                    "KINDLING_GITEA_CLUSTER_URL",
                    "http://gitea.kindling.test/kindling/source.git",
                );
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs with `--output json`; must succeed with one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        ok(&self.run(&all, &[]))
    }

    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.command(args, extra).output().unwrap()
    }

    /// `env create ENV --stamp sample --profile PROFILE MORE… --output json`, with the
    /// harness's environment and `extra`.
    pub fn create_command(
        &self,
        env: &str,
        profile: &Path,
        more: &[&str],
        extra: &[(&str, &str)],
    ) -> std::process::Command {
        let mut args = create_args(env, profile, more);
        args.extend(["--output", "json"]);
        self.command(&args, extra)
    }

    /// A test's own set of shared caches (`prefix`, recorded for the drop guard) and a
    /// profile for `provider` that uses them, without a local registry.
    pub fn caches_profile(&self, provider: &str, prefix: &str) -> PathBuf {
        std::fs::write(self.path("cache-prefix"), prefix).unwrap();
        let profile = self.path(&format!("caches-{provider}-profile.yaml"));
        std::fs::write(
            &profile,
            format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: caches}}\nspec:\n  provider: {provider}\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 18080, https: 18443}}\n  registry: false\n  imageCaches: true\n"),
        )
        .unwrap();
        profile
    }

    /// `env create ENV --stamp sample --profile PROFILE MORE…` with text output.
    pub fn create_text(
        &self,
        env: &str,
        profile: &Path,
        more: &[&str],
        extra: &[(&str, &str)],
    ) -> Output {
        self.run(&create_args(env, profile, more), extra)
    }

    pub fn create(&self, env: &str, extra: &[(&str, &str)]) -> Output {
        self.create_command(
            env,
            &self.path("profile.yaml"),
            &["--wait", "--timeout", "60s"],
            extra,
        )
        .output()
        .unwrap()
    }

    pub fn state(&self, env: &str) -> Value {
        let text =
            std::fs::read_to_string(self.path("data").join("envs").join(env).join("state.json"))
                .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// `env create ENV --stamp sample --profile PROFILE MORE…`.
pub fn create_args<'a>(env: &'a str, profile: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "env",
        "create",
        env,
        "--stamp",
        "sample",
        "--profile",
        profile.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    args
}

/// The names of the steps a create report lists with `status` (`done`, `skipped`).
/// Polls `ready` every 20 ms until it holds; fails the test after `within`.
pub fn wait_until(what: &str, within: std::time::Duration, mut ready: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed() < within, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn report_steps<'a>(report: &'a Value, status: &str) -> Vec<&'a str> {
    report["env"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// The names of the steps a state records as done.
pub fn done_steps(state: &Value) -> Vec<&str> {
    state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// The failure document of `out` names `what` in its error.
pub fn error_says(out: &Output, what: &str) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["ok"], false, "{doc}");
    let error = doc["error"].as_str().unwrap_or_default();
    assert!(error.contains(what), "{doc}");
    doc
}

/// The command succeeded (its output is not JSON).
pub fn ok_status(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ok(out: &Output) -> Value {
    ok_status(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Whether the container exists; a Docker CLI that fails for another reason fails the test
/// (it must not read as "the container is gone").
pub fn container_exists(name: &str) -> bool {
    let out = docker_cli(&["container", "inspect", name]);
    if out.status.success() {
        return true;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No such container") || stderr.contains("no such container"),
        "docker container inspect {name} failed: {stderr}"
    );
    false
}

pub fn delete_clean(h: &Harness, env: &str) {
    let forbidden = std::fs::read_to_string(h.path("bin/forbidden-calls")).unwrap_or_default();
    assert!(
        forbidden.is_empty(),
        "kindling ran a CLI it must not: {forbidden}"
    );
    let out = h.json(&["env", "delete", env]);
    assert_eq!(out["deleted"][0]["env"], env);
    assert!(
        docker_labelled(env).is_empty(),
        "left behind: {:?}",
        docker_labelled(env)
    );
    assert!(!container_exists(&format!("kindling-{env}-control-plane")));
    assert!(!h.path("data/envs").join(env).exists());
}

/// An engine installed on the cluster before kindling came, as its own installer leaves it:
/// Flux by `flux install` (every object labelled `app.kubernetes.io/version`, fluxcd/flux2
/// v2.9.4 pkg/manifestgen/install/templates.go), Argo CD from its install.yaml (no version
/// label; the version is the image tag, argoproj/argo-cd v3.5.1 manifests/install.yaml).
/// The CRDs are the pinned releases' (tests/fixtures/upstream).
pub fn install_engine_as_found(api: &FakeApi, engine: &str) {
    let (namespace, labels, crds, workload) = match engine {
        "argo" => (
            "argocd",
            json!({"app.kubernetes.io/part-of": "argocd"}),
            &[
                "argocd-application-crd.yaml",
                "argocd-applicationset-crd.yaml",
                "argocd-appproject-crd.yaml",
            ][..],
            // install.yaml's controller reads `application.namespaces` of
            // argocd-cmd-params-cm (empty there) through its env.
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "argocd-application-controller"},
                "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "argocd-application-controller", "image": "quay.io/argoproj/argocd:v3.5.1",
                    "args": ["/usr/local/bin/argocd-application-controller"],
                    "env": [{"name": "ARGOCD_APPLICATION_NAMESPACES", "valueFrom": {"configMapKeyRef": {"key": "application.namespaces", "name": "argocd-cmd-params-cm", "optional": true}}}]}]}}}}),
        ),
        _ => (
            "flux-system",
            json!({"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/instance": "flux-system", "app.kubernetes.io/version": "v2.9.4"}),
            &[
                "flux-source.toolkit.fluxcd.io_gitrepositories.yaml",
                "flux-source.toolkit.fluxcd.io_helmrepositories.yaml",
                "flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml",
                "flux-helm.toolkit.fluxcd.io_helmreleases.yaml",
            ][..],
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "kustomize-controller"},
                "spec": {"template": {"spec": {"containers": [{"name": "manager", "image": "ghcr.io/fluxcd/kustomize-controller:v1.9.4"}]}}}}),
        ),
    };
    let mut objects =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})];
    for f in crds {
        objects.push(
            serde_yaml_ng::from_str(&std::fs::read_to_string(schemas_dir().join(f)).unwrap())
                .unwrap(),
        );
    }
    if engine == "argo" {
        objects.push(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
            "data": {"url": "https://argocd.team.example"}}),
        );
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cmd-params-cm"}}));
    }
    objects.push(workload);
    for o in &mut objects {
        o["metadata"]["labels"] = labels.clone();
        if !matches!(
            o["kind"].as_str(),
            Some("Namespace" | "CustomResourceDefinition")
        ) {
            o["metadata"]["namespace"] = json!(namespace);
        }
    }
    plant(api, objects);
}

/// A cert-manager installed on the cluster before kindling came, by its Helm chart into
/// `namespace` (the chart's Deployments and CRDs as the fake renders the pinned chart,
/// tests/common/fake_cluster.rs `chart_workloads`), with Helm's release annotations.
pub fn install_cert_manager_as_found(api: &FakeApi, namespace: &str) {
    let mut objects = super::fake_cluster::chart_workloads(
        "cert-manager",
        namespace,
        &json!({"crds": {"enabled": true}}),
    );
    for o in &mut objects {
        o["metadata"]["annotations"] = json!({"meta.helm.sh/release-name": "cert-manager",
            "meta.helm.sh/release-namespace": namespace});
    }
    plant(
        api,
        std::iter::once(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace}}))
        .chain(objects)
        .collect(),
    );
}

/// Objects on the cluster, as something other than kindling put them there.
pub fn plant(api: &FakeApi, objects: Vec<Value>) {
    api.update(|stored| {
        for object in objects {
            let kind = object["kind"].as_str().unwrap();
            let api_version = object["apiVersion"].as_str().unwrap();
            stored.push(Stored {
                group_version: api_version.to_string(),
                plural: super::fake_cluster::plural_of(kind),
                namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                name: object["metadata"]["name"].as_str().unwrap().to_string(),
                object,
            });
        }
        builtin_controllers(stored);
    });
}

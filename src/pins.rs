//! Every upstream release kindling pins, in one table: the engines' install manifests, the
//! cluster tools and node images, the images kindling runs beside the cluster, and the charts
//! and images of the sample stamp. `kindling version` prints it; the README carries the same
//! table (a test keeps the two equal), and `scripts/pin-manifests.sh` re-downloads every pinned
//! file on a connected machine and checks its sum.
//!
//! Rules for a pin (DEVELOPERS.md): the newest stable release whose schema or behaviour could
//! be read at that release; images named directly carry a digest where the release publishes
//! one; a file kindling downloads carries its sha256. Where upstream publishes no digest or sum,
//! the row says so and why, rather than carrying a value nobody checked.

/// How kindling checks that what it got is what was pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// sha256 of the downloaded file.
    Sha256(&'static str),
    /// sha256 of a release binary per platform (`linux-amd64`, `darwin-arm64`, …).
    PlatformSha256(&'static [(&'static str, &'static str)]),
    /// The artifact is an image reference carrying `@sha256:…`.
    Digest,
    /// Nothing to check against: why.
    Unpinned(&'static str),
}

/// One pinned upstream release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// Short name (`flux`, `kind`, `kindest/node 1.37`, `traefik chart`).
    pub name: &'static str,
    pub version: &'static str,
    /// What kindling uses it for.
    pub role: &'static str,
    /// What is fetched: a URL, a download directory, an image reference, or `HELM-REPO CHART`.
    pub artifact: &'static str,
    pub integrity: Integrity,
}

impl Integrity {
    /// One line for tables (`kindling version`, the README): the sums in full, so a reader can
    /// compare them with what a release page says.
    pub fn describe(&self) -> String {
        match self {
            Integrity::Sha256(sum) => format!("sha256 {sum}"),
            Integrity::PlatformSha256(sums) => sums
                .iter()
                .map(|(platform, sum)| format!("{platform} sha256 {sum}"))
                .collect::<Vec<_>>()
                .join("; "),
            Integrity::Digest => "by digest".to_string(),
            Integrity::Unpinned(why) => format!("tag only: {why}"),
        }
    }
}

impl Pin {
    /// The pinned sha256 of the one file this pin downloads.
    pub fn sha256(&self) -> Option<&'static str> {
        match self.integrity {
            Integrity::Sha256(sum) => Some(sum),
            _ => None,
        }
    }

    /// The pinned sha256 of each platform's binary (`linux-amd64` → sum).
    pub fn platform_sha256(&self) -> &'static [(&'static str, &'static str)] {
        match self.integrity {
            Integrity::PlatformSha256(sums) => sums,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GitOps engines: install manifests applied with server-side apply.
// ---------------------------------------------------------------------------------------------

/// Flux v2.9.4 (flux2 tag v2.9.4, commit 889be9d6; source-controller v1.9.4,
/// kustomize-controller v1.9.4, helm-controller v1.6.3). The newest release whose CRDs could be
/// read: v2.9.5 and v2.9.6 exist, but their controller tags were not in any readable copy.
/// The sum is the release asset's, as pinned by three independent public pin files (the
/// release's own `flux_2.9.4_checksums.txt` lists install.yaml too; check with
/// `scripts/pin-manifests.sh`).
pub const FLUX: Pin = Pin {
    name: "flux",
    version: "v2.9.4",
    role: "GitOps engine (install manifest)",
    artifact: "https://github.com/fluxcd/flux2/releases/download/v2.9.4/install.yaml",
    integrity: Integrity::Sha256(
        "9eb86c5f9d606b2ac2cfe71223ab2f23faa2d59ccb21df4e08e5610e54d535f8",
    ),
};

/// Argo CD v3.5.1 (tag v3.5.1, commit 109ca7ca). raw.githubusercontent.com serves the Git blob,
/// so the sum is that of `git show v3.5.1:manifests/install.yaml`. v3.5.2/v3.5.3 exist but
/// could not be read.
pub const ARGO_CD: Pin = Pin {
    name: "argo-cd",
    version: "v3.5.1",
    role: "GitOps engine (install manifest, namespace argocd)",
    artifact: "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml",
    integrity: Integrity::Sha256(
        "795a3a972224da6a7f9d32c3e946445f062b60fb46028476715affeb688236e3",
    ),
};

// ---------------------------------------------------------------------------------------------
// Cluster tools: downloaded when not on PATH; the file is `{name}-{os}-{arch}` in the directory.
// ---------------------------------------------------------------------------------------------

/// kind v0.33.0 (tag commit 407a9675). `pkg/apis/config/v1alpha4/types.go` is unchanged from
/// v0.27.0 through v0.32.0 and main up to the v0.33.0 release PR, which only bumps the default
/// image. Sums: the release's `kind-OS-ARCH.sha256sum` assets, each found in two or more
/// independent public pin files.
pub const KIND: Pin = Pin {
    name: "kind",
    version: "v0.33.0",
    role: "cluster provider CLI (downloaded when not on PATH)",
    artifact: "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0",
    integrity: Integrity::PlatformSha256(&[
        (
            "linux-amd64",
            "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d",
        ),
        (
            "linux-arm64",
            "20022bee6cfcd5086cb7234d218e3454e6090022f2a8f55d1fa7fcf42c3867a2",
        ),
        (
            "darwin-amd64",
            "5a99f26f57246dc9319dd294803313197a0f34d33c525b3ea8b655db5916ece0",
        ),
        (
            "darwin-arm64",
            "0c8c7dbe5e23594a198b786c4bc13dacc101fa6196b0cb0b23a1ca44e61f4b4f",
        ),
    ]),
};

/// k3d v5.9.0 (tag commit 15dd1e2d), still the newest release; config schema v1alpha5.
pub const K3D: Pin = Pin {
    name: "k3d",
    version: "v5.9.0",
    role: "cluster provider CLI (downloaded when not on PATH)",
    artifact: "https://github.com/k3d-io/k3d/releases/download/v5.9.0",
    integrity: Integrity::PlatformSha256(&[
        (
            "linux-amd64",
            "06d8f25bc3a971c4eb29e0ff08429b180402db0f4dec838c9eac427e296800a0",
        ),
        (
            "linux-arm64",
            "03cde5cf23e6e8e67de5a039ecf26e5b85aca82fba3e5d13dadf904cd218a250",
        ),
        (
            "darwin-amd64",
            "b4aabc37534f95b9c764e7823f2df923f50d57600837aa60a06266cce47db732",
        ),
        (
            "darwin-arm64",
            "fe106541d5d0a3f18debcd4d432a16f8c0ce3e6ddc06f8fbb6f696a122313e00",
        ),
    ]),
};

/// Node images per Kubernetes minor, newest first (the first is the default).
pub struct NodeImages {
    pub kubernetes: &'static str,
    /// kind's image for this minor, as the kind release notes print it: by digest (kind says
    /// an image is only known to work with its release when pinned by digest).
    pub kind: Pin,
    /// k3s by exact release tag: k3s releases publish no image digest.
    pub k3s: Pin,
}

const K3S_NO_DIGEST: Integrity =
    Integrity::Unpinned("k3s releases publish no image digest; pinned by exact release tag");

const fn node_images(
    kubernetes: &'static str,
    kind_name: &'static str,
    kind_version: &'static str,
    kind_image: &'static str,
    k3s_name: &'static str,
    k3s_version: &'static str,
    k3s_image: &'static str,
) -> NodeImages {
    NodeImages {
        kubernetes,
        kind: Pin {
            name: kind_name,
            version: kind_version,
            role: "kind node image",
            artifact: kind_image,
            integrity: Integrity::Digest,
        },
        k3s: Pin {
            name: k3s_name,
            version: k3s_version,
            role: "k3d node image",
            artifact: k3s_image,
            integrity: K3S_NO_DIGEST,
        },
    }
}

/// kind v0.33.0's four images (its release notes); the newest k3s patch of each minor.
pub const NODE_IMAGES: &[NodeImages] = &[
    node_images(
        "1.37",
        "kindest/node 1.37",
        "v1.37.0",
        "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
        "rancher/k3s 1.37",
        "v1.37.1+k3s1",
        "rancher/k3s:v1.37.1-k3s1",
    ),
    node_images(
        "1.36",
        "kindest/node 1.36",
        "v1.36.4",
        "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
        "rancher/k3s 1.36",
        "v1.36.5+k3s1",
        "rancher/k3s:v1.36.5-k3s1",
    ),
    node_images(
        "1.35",
        "kindest/node 1.35",
        "v1.35.8",
        "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
        "rancher/k3s 1.35",
        "v1.35.9+k3s1",
        "rancher/k3s:v1.35.9-k3s1",
    ),
    node_images(
        "1.34",
        "kindest/node 1.34",
        "v1.34.11",
        "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d",
        "rancher/k3s 1.34",
        "v1.34.12+k3s1",
        "rancher/k3s:v1.34.12-k3s1",
    ),
];

// ---------------------------------------------------------------------------------------------
// Beside the cluster.
// ---------------------------------------------------------------------------------------------

const IMAGE_NO_DIGEST: Integrity = Integrity::Unpinned(
    "the release publishes no image digest; pinned by exact release tag (KINDLING_*_IMAGE for a mirror)",
);

/// Gitea: the desired state.
/// Gitea 1.27.0: its API spec (`templates/swagger/v1_json.tmpl`, the same blob at v1.27.0-rc0
/// and the 1.27.0 release commit) is what the client is checked against. 1.27.3 exists; its
/// template could not be read.
pub const GITEA: Pin = Pin {
    name: "gitea",
    version: "1.27.0",
    role: "local Git server (container)",
    artifact: "docker.io/gitea/gitea:1.27.0",
    integrity: IMAGE_NO_DIGEST,
};

/// The registry image (CNCF distribution v3.1.1, docker-library/official-images
/// `library/registry`), for the env's registry and the pull-through caches. 3.1.2 exists; its
/// tag could not be read. By digest: the multi-platform index docker-library/repo-info last
/// recorded for the tag (repos/registry/remote/3.1.1.md, commit 38feaf4c), so a re-pushed
/// tag cannot change what runs.
pub const REGISTRY: Pin = Pin {
    name: "registry",
    version: "3.1.1",
    role: "local registry and pull-through caches (containers)",
    artifact: "docker.io/library/registry:3.1.1@sha256:849b7d29920d060df8091770ede2279c07924ecd29e2a4c029ee0b5ea2ea542b",
    integrity: Integrity::Digest,
};

// ---------------------------------------------------------------------------------------------
// The sample stamp (stamps/sample): a test keeps its files equal to these rows.
// ---------------------------------------------------------------------------------------------

const CHART_NO_DIGEST: Integrity = Integrity::Unpinned(
    "fetched by the engine from the Helm repository by chart version; the engine verifies nothing more",
);

/// cert-manager v1.21.1 (tag commit 24e33194), the newest release that could be read.
pub const CERT_MANAGER_CHART: Pin = Pin {
    name: "cert-manager chart",
    version: "v1.21.1",
    role: "sample stamp: certificates from kindling's CA",
    artifact: "https://charts.jetstack.io cert-manager",
    integrity: CHART_NO_DIGEST,
};

/// Traefik chart 41.3.0 (traefik/traefik-helm-chart tag v41.3.0, commit a8a66d00), shipping
/// Traefik v3.7.11: the newest chart whose values schema could be read (41.6.x exists).
pub const TRAEFIK_CHART: Pin = Pin {
    name: "traefik chart",
    version: "41.3.0",
    role: "sample stamp: ingress (Traefik v3.7.11, serves class nginx)",
    artifact: "https://traefik.github.io/charts traefik",
    integrity: CHART_NO_DIGEST,
};

/// metrics-server chart 3.13.1 (kubernetes-sigs/metrics-server tag
/// metrics-server-helm-chart-3.13.1, charts/metrics-server/Chart.yaml, appVersion 0.8.1; the
/// newest in the repository's gh-pages index.yaml that could be read): the add-on HostK8s turns
/// on by default (it pins 3.13.0). The chart has no values schema; its values.yaml has `args`
/// (appended to `defaultArgs`) and `commonLabels`.
pub const METRICS_SERVER_CHART: Pin = Pin {
    name: "metrics-server chart",
    version: "3.13.1",
    role: "add-on metrics-server (metrics-server v0.8.1)",
    artifact: "https://kubernetes-sigs.github.io/metrics-server metrics-server",
    integrity: CHART_NO_DIGEST,
};

/// Gateway API v1.6.1 standard channel (kubernetes-sigs/gateway-api tag v1.6.1: the newest
/// stable release that could be read; config/crd/standard/ holds its ten CRDs and the
/// safe-upgrades ValidatingAdmissionPolicy, which hack/build-install-yaml.sh joins into the
/// release's standard-install.yaml). HostK8s installs v1.3.0 always.
pub const GATEWAY_API: Pin = Pin {
    name: "gateway-api",
    version: "v1.6.1",
    role: "add-on gateway-api (standard channel CRDs)",
    artifact: "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml",
    integrity: Integrity::Unpinned(
        "the release publishes no sum; recorded at first download and enforced after, as an unpinned engine manifest is",
    ),
};

/// MetalLB chart 0.16.1 (metallb/metallb tag v0.16.1, charts/metallb/Chart.yaml version
/// 0.16.1, appVersion v0.16.1; the newest release that could be read; its values schema and
/// the IPAddressPool/L2Advertisement CRDs it serves as `metallb.io/v1beta1` are in the test
/// fixtures). HostK8s pins 0.15.2 (infra/scripts/setup-metallb.py), opt-in.
pub const METALLB_CHART: Pin = Pin {
    name: "metallb chart",
    version: "0.16.1",
    role: "add-on metallb (LoadBalancer addresses, opt-in)",
    artifact: "https://metallb.github.io/metallb metallb",
    integrity: CHART_NO_DIGEST,
};

/// Vault chart v0.34.1 (hashicorp/vault-helm tag v0.34.1, Chart.yaml appVersion 2.0.4; the
/// newest that could be read; its values.schema.json is in the test fixtures). HostK8s pins
/// 0.30.1 and runs Vault in dev mode, as kindling does.
pub const VAULT_CHART: Pin = Pin {
    name: "vault chart",
    version: "0.34.1",
    role: "add-on vault (Vault 2.0.4, dev mode)",
    artifact: "https://helm.releases.hashicorp.com vault",
    integrity: CHART_NO_DIGEST,
};

/// External Secrets Operator chart 2.9.0 (external-secrets/external-secrets tag
/// helm-chart-2.9.0, deploy/charts/external-secrets/Chart.yaml appVersion v2.9.0; the newest
/// in its gh-pages index.yaml that could be read; CRDs serve `external-secrets.io/v1`).
/// HostK8s pins 0.19.2.
pub const EXTERNAL_SECRETS_CHART: Pin = Pin {
    name: "external-secrets chart",
    version: "2.9.0",
    role: "add-on vault (External Secrets Operator v2.9.0)",
    artifact: "https://charts.external-secrets.io external-secrets",
    integrity: CHART_NO_DIGEST,
};

/// The newest tags in docker-library/official-images (`library/postgres`, `library/nginx`) and
/// stefanprodan/podinfo that could be read.
pub const POSTGRES_IMAGE: Pin = Pin {
    name: "postgres",
    version: "18.6",
    role: "sample stamp: database",
    artifact: "docker.io/library/postgres:18.6-alpine",
    integrity: IMAGE_NO_DIGEST,
};

pub const PODINFO_IMAGE: Pin = Pin {
    name: "podinfo",
    version: "6.14.1",
    role: "sample stamp: api",
    artifact: "ghcr.io/stefanprodan/podinfo:6.14.1",
    integrity: IMAGE_NO_DIGEST,
};

pub const NGINX_IMAGE: Pin = Pin {
    name: "nginx",
    version: "1.30.4",
    role: "sample stamp: website",
    artifact: "docker.io/library/nginx:1.30.4-alpine",
    integrity: IMAGE_NO_DIGEST,
};

/// The sample stamp's pins, for the test that holds its files to them.
pub const SAMPLE_STAMP: &[Pin] = &[
    CERT_MANAGER_CHART,
    TRAEFIK_CHART,
    POSTGRES_IMAGE,
    PODINFO_IMAGE,
    NGINX_IMAGE,
];

/// Every pin, in the order `kindling version` and the README list them.
pub fn all() -> Vec<Pin> {
    let mut pins = vec![FLUX, ARGO_CD, KIND, K3D];
    pins.extend(NODE_IMAGES.iter().map(|n| n.kind));
    pins.extend(NODE_IMAGES.iter().map(|n| n.k3s));
    pins.extend([GITEA, REGISTRY]);
    pins.extend_from_slice(SAMPLE_STAMP);
    pins.push(METRICS_SERVER_CHART);
    pins.push(GATEWAY_API);
    pins.extend([VAULT_CHART, EXTERNAL_SECRETS_CHART]);
    pins.push(METALLB_CHART);
    pins
}

//! HostK8s entries may hold Flux HelmRepository + HelmRelease objects; those become Argo CD
//! Helm sources with the same chart, version and values, and the entry's other manifests are
//! served through a generated kustomize overlay that deletes the Flux objects. What has no Argo
//! CD equivalent is said in a note.

// The Argo CD renderer's types and helpers are this part's too.
use super::*;

pub(super) fn path_sources(
    entry: &Entry,
    path: &PathSource,
    opts: &RenderOptions,
    notes: &mut Vec<String>,
) -> Result<Translated, StampError> {
    let has_kustomization = kustomization_file(&path.host_dir).is_some();
    // Flux applies every manifest below a plain directory; Argo CD must be told to recurse.
    let plain_directory = || {
        (!has_kustomization).then_some(DirectorySource {
            recurse: true,
            exclude: None,
        })
    };
    let documents = directory_documents(&path.host_dir, &path.source_root())?;
    let (flux, plain): (Vec<&Document>, Vec<&Document>) = documents
        .iter()
        .partition(|d| d.group().ends_with(FLUX_GROUP_SUFFIX));
    if flux.is_empty() {
        return Ok(Translated {
            sources: vec![git_source(opts, path.repo_path.clone(), plain_directory())],
            namespace: None,
            overlay: None,
        });
    }

    let (mut sources, namespace) = helm_sources(entry, &flux, notes);
    for other in flux
        .iter()
        .filter(|d| !matches!(d.kind(), "HelmRelease" | "HelmRepository"))
    {
        notes.push(format!(
            "{}: Flux {} '{}' ({}) has no Argo CD equivalent and is left out",
            entry.name,
            other.kind(),
            other.name(),
            other.file.display()
        ));
    }

    let overlay = if plain.is_empty() {
        None
    } else {
        let (source, overlay) = non_flux_source(entry, path, opts, &flux, &plain, notes);
        sources.push(source);
        overlay
    };
    if sources.is_empty() {
        notes.push(format!(
            "{}: nothing in '{}' can be deployed by Argo CD",
            entry.name, path.repo_path
        ));
    }
    Ok(Translated {
        sources,
        namespace,
        overlay,
    })
}

/// The Helm sources of a path entry's Flux HelmReleases, and the namespace they target.
fn helm_sources(
    entry: &Entry,
    flux: &[&Document],
    notes: &mut Vec<String>,
) -> (Vec<ApplicationSource>, Option<String>) {
    let mut sources = Vec::new();
    let mut namespace: Option<String> = None;
    for release in flux.iter().filter(|d| d.kind() == "HelmRelease") {
        match translate_helm_release(entry, release, flux) {
            Ok((source, target_namespace)) => {
                if namespace.is_some() && namespace != target_namespace {
                    notes.push(format!(
                        "{}: HelmReleases target different namespaces; Argo CD deploys all of them to '{}'",
                        entry.name,
                        namespace.as_deref().unwrap_or_default()
                    ));
                }
                namespace = namespace.or(target_namespace);
                sources.push(source);
            }
            Err(note) => notes.push(format!("{}: {note}", entry.name)),
        }
    }
    (sources, namespace)
}

/// The source of a path entry's other manifests: through a generated overlay that deletes the
/// Flux objects when the directory is a kustomization, else the directory without the files
/// that hold Flux objects.
fn non_flux_source(
    entry: &Entry,
    path: &PathSource,
    opts: &RenderOptions,
    flux: &[&Document],
    plain: &[&Document],
    notes: &mut Vec<String>,
) -> (ApplicationSource, Option<RenderedFile>) {
    if kustomization_file(&path.host_dir).is_some() {
        let dir = format!("{}/argo/overlays/{}", opts.bundle_dir, entry.name);
        let overlay = flux_free_overlay(&dir, &path.repo_path, flux);
        return (git_source(opts, dir, None), Some(overlay));
    }
    // Without a kustomization there is nothing to overlay; leave out the files that
    // hold Flux objects, which works when they hold nothing else.
    let mut flux_files: Vec<String> = flux
        .iter()
        .filter_map(|d| d.file.strip_prefix(&path.host_dir).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    flux_files.sort();
    flux_files.dedup();
    let mixed = plain.iter().any(|p| flux.iter().any(|f| f.file == p.file));
    if mixed {
        notes.push(format!(
            "{}: a file mixes Flux objects with other manifests; add a kustomization.yaml to the directory so kindling can separate them",
            entry.name
        ));
    }
    let source = git_source(
        opts,
        path.repo_path.clone(),
        Some(DirectorySource {
            recurse: true,
            exclude: Some(format!("{{{}}}", flux_files.join(","))),
        }),
    );
    (source, None)
}

/// A Flux HelmRelease as an Argo CD Helm source: same chart, version, release name and values.
fn translate_helm_release(
    entry: &Entry,
    release: &Document,
    flux: &[&Document],
) -> Result<(ApplicationSource, Option<String>), String> {
    let spec = release.value.get("spec").cloned().unwrap_or(Value::Null);
    let chart_spec = spec.pointer("/chart/spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let Some(chart) = text(&chart_spec, "/chart") else {
        return Err(format!(
            "HelmRelease '{}' uses spec.chartRef or has no chart; only spec.chart.spec can be translated",
            release.name()
        ));
    };
    let source_kind = text(&chart_spec, "/sourceRef/kind").unwrap_or_default();
    let source_name = text(&chart_spec, "/sourceRef/name").unwrap_or_default();
    if source_kind != "HelmRepository" {
        return Err(format!(
            "HelmRelease '{}' takes its chart from a {source_kind}; only HelmRepository sources can be translated",
            release.name()
        ));
    }
    let Some(repository) = flux
        .iter()
        .find(|d| d.kind() == "HelmRepository" && d.name() == source_name)
    else {
        return Err(format!(
            "HelmRelease '{}' refers to HelmRepository '{source_name}', which is not in the entry's directory",
            release.name()
        ));
    };
    let url = text(&repository.value, "/spec/url").unwrap_or_default();
    let url = if text(&repository.value, "/spec/type").as_deref() == Some("oci")
        && !url.starts_with("oci://")
    {
        format!("oci://{url}")
    } else {
        url
    };
    if spec.get("valuesFrom").is_some() {
        return Err(format!(
            "HelmRelease '{}': valuesFrom (values read from ConfigMaps/Secrets at run time) cannot be translated; inline the values",
            release.name()
        ));
    }
    let values = spec
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let helm = HelmChart {
        repo: url,
        chart,
        // Flux's default is the latest version; Argo CD's semver constraints accept `*`.
        version: text(&chart_spec, "/version").unwrap_or_else(|| "*".to_string()),
        release_name: Some(
            text(&spec, "/releaseName").unwrap_or_else(|| release.name().to_string()),
        ),
        values,
        // A HostK8s stack's own HelmRepository decides its URL, as it does under HostK8s.
        plain_http: true,
    };
    let namespace =
        text(&spec, "/targetNamespace").or_else(|| release.namespace().map(str::to_string));
    Ok((helm_source(&helm, &entry.name), namespace))
}

/// A kustomization that builds the entry's directory without its Flux objects.
fn flux_free_overlay(overlay_dir: &str, repo_path: &str, flux: &[&Document]) -> RenderedFile {
    let depth = overlay_dir.split('/').filter(|s| !s.is_empty()).count();
    let resource = format!("{}{}", "../".repeat(depth), repo_path);
    let patches: Vec<Value> = flux
        .iter()
        .map(|d| {
            let mut target = Map::new();
            target.insert("apiVersion".into(), d.api_version().into());
            target.insert("kind".into(), d.kind().into());
            let mut metadata = Map::new();
            metadata.insert("name".into(), d.name().into());
            if let Some(ns) = d.namespace() {
                metadata.insert("namespace".into(), ns.into());
            }
            target.insert("metadata".into(), Value::Object(metadata));
            let body = serde_yaml_ng::to_string(&target).unwrap_or_default();
            let mut patch = Map::new();
            patch.insert("patch".into(), format!("$patch: delete\n{body}").into());
            Value::Object(patch)
        })
        .collect();
    let mut kustomization = Map::new();
    kustomization.insert(
        "apiVersion".into(),
        "kustomize.config.k8s.io/v1beta1".into(),
    );
    kustomization.insert("kind".into(), "Kustomization".into());
    kustomization.insert("resources".into(), Value::Array(vec![resource.into()]));
    kustomization.insert("patches".into(), Value::Array(patches));
    RenderedFile {
        path: format!(
            "{}/kustomization.yaml",
            overlay_dir
                .split_once("/argo/")
                .map(|(_, rest)| format!("argo/{rest}"))
                .unwrap_or_else(|| overlay_dir.to_string())
        ),
        documents: vec![Value::Object(kustomization)],
    }
}

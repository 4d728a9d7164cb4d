//! Load + validate + render of a synthetic 500-entry stamp, for both engines.
//! Target (issue #3): under 100 ms for 500 entries on the 2-core CI machine.
//! Run with `cargo bench --bench stamp_render` (or `scripts/bench-render.sh`).

use std::fmt::Write as _;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kindling::stamp::{
    self,
    render::{Engine, RenderOptions, render},
};

const ENTRIES: usize = 500;

/// A stamp of `ENTRIES` entries: every tenth a Helm chart, the rest directories with a
/// kustomization and two manifests; each depends on up to three earlier entries.
fn synthetic_stamp(root: &Path) {
    let dir = root.join("stamps/big");
    let mut yaml = String::from(
        "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: big}\nspec:\n  ignore: ['/*', '!/stamps/big/']\n  components:\n",
    );
    for i in 0..ENTRIES {
        if i == ENTRIES / 2 {
            yaml.push_str("  applications:\n");
        }
        let deps: Vec<String> = [7, 13, 31]
            .iter()
            .filter(|&&d| i >= d)
            .map(|d| format!("e{}", i - d))
            .collect();
        if i % 10 == 0 {
            let _ = writeln!(
                yaml,
                "    - name: e{i}\n      helm: {{repo: 'https://charts.example/{i}', chart: c{i}, version: 1.{i}.0, values: {{replicas: 1, image: {{tag: v{i}}}}}}}\n      dependsOn: [{}]",
                deps.join(", ")
            );
        } else {
            let entry_dir = dir.join(format!("entries/e{i}"));
            std::fs::create_dir_all(&entry_dir).unwrap();
            std::fs::write(
                entry_dir.join("kustomization.yaml"),
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml, service.yaml]\n",
            )
            .unwrap();
            std::fs::write(
                entry_dir.join("deployment.yaml"),
                format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: e{i}, namespace: n{i}}}\nspec:\n  selector: {{matchLabels: {{app: e{i}}}}}\n  template:\n    metadata: {{labels: {{app: e{i}}}}}\n    spec: {{containers: [{{name: c, image: 'nginx:1.27'}}]}}\n"),
            )
            .unwrap();
            std::fs::write(
                entry_dir.join("service.yaml"),
                format!("apiVersion: v1\nkind: Service\nmetadata: {{name: e{i}, namespace: n{i}}}\nspec: {{selector: {{app: e{i}}}, ports: [{{port: 80}}]}}\n"),
            )
            .unwrap();
            let _ = writeln!(
                yaml,
                "    - name: e{i}\n      path: entries/e{i}\n      namespace: n{i}\n      dependsOn: [{}]\n      healthChecks: [{{kind: Deployment, name: e{i}, namespace: n{i}}}]",
                deps.join(", ")
            );
        }
    }
    std::fs::write(dir.join("stamp.yaml"), yaml).unwrap();
}

fn bench(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    synthetic_stamp(root.path());
    let dir = root.path().join("stamps/big");
    let opts = RenderOptions::standard(kindling::gitea::service_repo_url());
    // Fail loudly rather than time an error path.
    let s = stamp::load(&dir, None).unwrap();
    assert_eq!(s.entries.len(), ENTRIES);

    let mut group = c.benchmark_group("stamp_500_entries");
    group.sample_size(20);
    for engine in [Engine::Flux, Engine::Argo] {
        group.bench_function(format!("load_validate_render_{}", engine.name()), |b| {
            b.iter(|| {
                let s = stamp::load(&dir, None).unwrap();
                render(&s, engine, &opts).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Creates and removes the Docker side of one env (network, volume, two containers) through
//! kindling's Docker layer, ROUNDS times, and prints the elapsed seconds. Used by
//! scripts/bench-docker.sh, which times the same steps done with the `docker` CLI.
//! Usage: bench_docker_env IMAGE ROUNDS

use std::time::Instant;

use kindling::docker::{ContainerSpec, DockerClient, VolumeMount, env_labels};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let image = args
        .next()
        .unwrap_or_else(|| "kindling-test/busybox:bench".to_string());
    let rounds: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let docker = DockerClient::connect().await?;
    let started = Instant::now();
    for round in 0..rounds {
        let env = format!("bench{}x{round}", std::process::id());
        let labels = env_labels(&env);
        let network = format!("kindling-{env}");
        let volume = format!("kindling-{env}-data");
        let (n, v) = tokio::join!(
            docker.ensure_network(&network, &labels),
            docker.ensure_volume(&volume, &labels)
        );
        n?;
        v?;
        // As the create flow does: Gitea and the registry start concurrently.
        let start = |name: &str| {
            let spec = ContainerSpec {
                name: format!("kindling-{env}-{name}"),
                image: image.clone(),
                command: Some(vec!["sleep".into(), "300".into()]),
                labels: labels.clone(),
                volumes: vec![VolumeMount {
                    volume: volume.clone(),
                    path: "/data".into(),
                }],
                network: Some(network.clone()),
                ..Default::default()
            };
            let docker = docker.clone();
            // `run_container` returns once Docker has started the container, which is all the
            // CLI side of the benchmark waits for too.
            async move { docker.run_container(&spec).await.map(|_| ()) }
        };
        let (gitea, registry) = tokio::join!(start("gitea"), start("registry"));
        gitea?;
        registry?;
        docker.sweep(&env, true).await?;
    }
    println!("{:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

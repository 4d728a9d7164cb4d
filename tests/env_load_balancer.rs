//! LoadBalancer addresses, opt-in (issue #19 part 2): the `metallb` add-on installs MetalLB
//! with HostK8s' pool on the cluster's Docker network, and a Service of type LoadBalancer in
//! the stamp gets an address from it.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, docker_cli, unique};

    #[tokio::test(flavor = "multi_thread")]
    async fn env_metallb_addon_gives_load_balancer_services_an_address_of_the_network() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        // The sample stamp's website also published as a LoadBalancer.
        let website = h.path("source/stamps/sample/applications/website");
        std::fs::write(
            website.join("load-balancer.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: website-lb}\nspec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.80\n  selector: {app: website}\n  ports: [{port: 80, targetPort: 80}]\n",
        )
        .unwrap();
        let kustomization = website.join("kustomization.yaml");
        let text = std::fs::read_to_string(&kustomization).unwrap();
        std::fs::write(
            &kustomization,
            text.replace(
                "  - service.yaml\n",
                "  - service.yaml\n  - load-balancer.yaml\n",
            ),
        )
        .unwrap();
        let profile = h.path("profile.yaml");
        let mut text = std::fs::read_to_string(&profile).unwrap();
        text.push_str("  addons: [metallb]\n");
        std::fs::write(&profile, text).unwrap();

        let env = unique("lb");
        let created = ok(&h.create(&env, &[]));
        for e in created["env"]["status"]["entries"].as_array().unwrap() {
            assert_eq!(e["readiness"], "ready", "{e}");
        }
        // The pool is HostK8s' formula on the cluster network's subnet, as Docker reports it.
        let state = h.state(&env);
        let network = state["cluster"]["network"].as_str().unwrap().to_string();
        let subnet = docker_cli(&[
            "network",
            "inspect",
            &network,
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ]);
        let subnet = String::from_utf8_lossy(&subnet.stdout)
            .split_whitespace()
            .find(|s| s.contains('.'))
            .unwrap()
            .to_string();
        let range = kindling::addons::metallb::pool_range(&subnet).unwrap();
        assert_eq!(
            state["cluster"]["loadBalancerRange"],
            range.as_str(),
            "{state}"
        );
        let pool = h
            .api
            .object("IPAddressPool", "kind-pool")
            .expect("the pool");
        assert_eq!(pool["metadata"]["namespace"], "hostk8s");
        assert_eq!(pool["spec"]["addresses"][0], range.as_str(), "{pool}");
        assert!(h.api.object("L2Advertisement", "kind-l2").is_some());
        // The Service's address is the pool's first.
        let first = range.split('-').next().unwrap().to_string();
        wait_until(
            "the LoadBalancer address",
            std::time::Duration::from_secs(30),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                h.api.object("Service", "website-lb").is_some_and(|s| {
                    s["status"]["loadBalancer"]["ingress"][0]["ip"] == first.as_str()
                })
            },
        );
        let status = h.json(&["env", "status", &env]);
        assert_eq!(
            status["status"]["addonUrls"][0]["url"],
            range.as_str(),
            "{status}"
        );
        // A sync keeps the same pool (made from the recorded range, not the cluster again).
        ok(&h.run(&["env", "sync", &env, "--output", "json"], &[]));
        let pushed = super::common::fake_gitea::git(
            &h.gitea.root.join("kindling/source.git"),
            &["show", "main:.kindling/addons/metallb-pool/install.yaml"],
        );
        assert!(pushed.contains(&range), "{pushed}");
        delete_clean(&h, &env);
    }
}

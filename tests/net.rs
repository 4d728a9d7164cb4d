//! kindling's own downloads behind a TLS-intercepting proxy (issue #20, part 3): a real HTTPS
//! server (`openssl s_server`) whose certificate a network root signs, as such a proxy's
//! would be. ureq trusts Mozilla's roots only, so the download fails; with the network's root
//! named (`--extra-ca`, `KINDLING_EXTRA_CA`), kindling's download succeeds.
//!
//! One test per process: the roots are set once per process (`kindling::net::trust_also`).

#[test]
fn net_downloads_trust_the_network_root_they_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Corp TLS Inspection Root");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.path().join("corp-root.pem"),
        dir.path().join("leaf.pem"),
        dir.path().join("leaf.key"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&cert_file)
        .arg("-key")
        .arg(&key_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl");
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !up {
        let _ = server.kill();
        let _ = server.wait();
        panic!("openssl s_server did not listen");
    }
    let url = format!("https://localhost:{port}/");

    // What kindling did before: ureq's default roots, which know nothing of the network's.
    let plain: ureq::Agent = ureq::Agent::config_builder().build().into();
    let refused = plain.get(&url).call().unwrap_err().to_string();
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"),
        "{refused}"
    );
    // A bad file is refused with its name.
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, leaf.pem()).unwrap();
    let e = kindling::net::trust_also(std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not-a-ca.pem") && e.contains("not a CA"), "{e}");
    // With the root: kindling's download goes through.
    kindling::net::trust_also(std::slice::from_ref(&ca_file)).unwrap();
    let body = kindling::cluster::tools::fetch_bytes(&url, 1 << 20).unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("s_server"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let _ = server.kill();
    let _ = server.wait();
}

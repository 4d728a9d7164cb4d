//! The local CA, checked with real openssl: the chain verifies for local names, name
//! constraints reject everything else, keys are private, the root is created once.

mod common;

mod pki {
    use std::path::Path;
    use std::process::Command;

    use base64::Engine as _;
    use kindling::pki::{self, CaPair, Issued, LocalNames, PkiError};
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
    use time::{Duration, OffsetDateTime};

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn setup() -> (tempfile::TempDir, CaPair, CaPair) {
        let dir = tempfile::tempdir().unwrap();
        let names = LocalNames::default();
        let root = pki::ensure_root(dir.path(), &names, now()).unwrap();
        let (intermediate, issued) =
            pki::ensure_intermediate(dir.path(), "dev", &root, &names, now()).unwrap();
        assert_eq!(issued, Issued::Created);
        (dir, root, intermediate)
    }

    /// A leaf for `names`, issued with rcgen by the env's intermediate, as cert-manager would.
    fn leaf(dir: &Path, intermediate: &CaPair, names: &[&str]) -> std::path::PathBuf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params
            .signed_by(&key, &intermediate.issuer().unwrap())
            .unwrap();
        let path = dir.join(format!("leaf-{}.pem", names[0]));
        std::fs::write(&path, cert.pem()).unwrap();
        path
    }

    /// `kindling ARGS` on the data dir `data` (no CA names opted into) fails, saying `says`.
    fn refused_by_cli(data: &Path, args: &[&str], says: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .env("KINDLING_DATA_DIR", data)
            .env_remove(pki::CA_NAMES_VAR)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} went ahead: {said}");
        assert!(said.contains(says), "{args:?}: {said}");
    }

    /// `openssl verify -CAfile root -untrusted intermediate leaf`: (success, output).
    fn openssl_verify(root: &CaPair, intermediate: &CaPair, leaf: &Path) -> (bool, String) {
        openssl_verify_for(root, intermediate, leaf, "any")
    }

    /// `openssl x509 -text` of a certificate.
    fn x509_text(cert: &Path) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The same, for a purpose (`sslserver`, `smimesign`, …).
    fn openssl_verify_for(
        root: &CaPair,
        intermediate: &CaPair,
        leaf: &Path,
        purpose: &str,
    ) -> (bool, String) {
        let out = Command::new("openssl")
            .arg("verify")
            .args(["-purpose", purpose])
            .arg("-CAfile")
            .arg(&root.cert_path)
            .arg("-untrusted")
            .arg(&intermediate.cert_path)
            .arg(leaf)
            .output()
            .expect("openssl is required (scripts/test.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[test]
    fn pki_chain_verifies_with_openssl_for_local_names() {
        let (dir, root, intermediate) = setup();
        for names in [
            &["api.localhost"][..],
            &["localhost"],
            &["a.b.localhost", "www.localhost"],
            &["127.0.0.1"],
            &["::1"],
        ] {
            let leaf = leaf(dir.path(), &intermediate, names);
            // As a TLS server certificate, the way browsers and curl check it.
            let (ok, text) = openssl_verify_for(&root, &intermediate, &leaf, "sslserver");
            assert!(ok, "{names:?}: {text}");
            assert!(text.contains(": OK"), "{text}");
        }
    }

    /// Names beyond localhost are the user's choice (KINDLING_CA_NAMES), made when the root is.
    #[test]
    fn pki_names_opted_into_are_signed_for() {
        let dir = tempfile::tempdir().unwrap();
        let names = LocalNames::with_extra(Some(".test, dev.example.internal")).unwrap();
        let root = pki::ensure_root(dir.path(), &names, now()).unwrap();
        let (intermediate, _) =
            pki::ensure_intermediate(dir.path(), "dev", &root, &names, now()).unwrap();
        for (leaf_names, accepted) in [
            (&["web.test"][..], true),
            (&["dev.example.internal"], true),
            (&["other.internal"], false),
        ] {
            let leaf = leaf(dir.path(), &intermediate, leaf_names);
            let (ok, text) = openssl_verify_for(&root, &intermediate, &leaf, "sslserver");
            assert_eq!(ok, accepted, "{leaf_names:?}: {text}");
        }
        for bad in [
            "",
            ".",
            "a..b",
            "x y",
            "*.test",
            "-.test.",
            "under_score.test",
        ] {
            if bad.is_empty() {
                continue;
            }
            assert!(
                LocalNames::with_extra(Some(bad)).is_err(),
                "{bad:?} was taken as a name"
            );
        }
        assert_eq!(
            LocalNames::with_extra(Some(" ,  ")).unwrap(),
            LocalNames::default()
        );
    }

    /// The CA signs for TLS and local names only (issue #17 item 3): leaves for S/MIME, an
    /// email address, a SPIFFE URI, a corporate `.internal` or mDNS `.local` name, a cluster
    /// service name all fail verification with real openssl.
    #[test]
    fn pki_ca_signs_for_tls_and_local_names_only() {
        let (dir, root, intermediate) = setup();
        let issue = |name: &str, params: CertificateParams| {
            let key = KeyPair::generate().unwrap();
            let cert = params
                .signed_by(&key, &intermediate.issuer().unwrap())
                .unwrap();
            let path = dir.path().join(format!("{name}.pem"));
            std::fs::write(&path, cert.pem()).unwrap();
            path
        };
        // S/MIME: an email identity, email protection.
        let mut smime = CertificateParams::new(Vec::<String>::new()).unwrap();
        smime.subject_alt_names = vec![SanType::Rfc822Name("me@localhost".try_into().unwrap())];
        smime.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        let smime = issue("smime", smime);
        let (ok, text) = openssl_verify_for(&root, &intermediate, &smime, "smimesign");
        assert!(!ok, "an S/MIME leaf verified: {text}");
        // Even without asking for a purpose, the email name is outside the permitted ones.
        let (ok, text) = openssl_verify(&root, &intermediate, &smime);
        assert!(
            !ok && text.contains("permitted subtree violation"),
            "{text}"
        );
        // A SPIFFE workload identity beside a local name.
        let mut spiffe = CertificateParams::new(vec!["api.localhost".to_string()]).unwrap();
        spiffe.subject_alt_names.push(SanType::URI(
            "spiffe://cluster.local/ns/default/sa/api"
                .try_into()
                .unwrap(),
        ));
        let spiffe = issue("spiffe", spiffe);
        let (ok, text) = openssl_verify(&root, &intermediate, &spiffe);
        assert!(
            !ok && text.contains("permitted subtree violation"),
            "{text}"
        );
        // Names that are not this machine's (`x.internal`, `printer.local`, `db.svc`…):
        // pki_name_constraints_reject_names_outside_local_ones.
        // Code signing: OpenSSL 3.0 has no code-signing purpose to verify with, so the CA's
        // extended key usage is checked as written (Windows and macOS honour it on a CA).
        for ca in [&root, &intermediate] {
            let text = x509_text(&ca.cert_path);
            assert!(
                text.contains(
                    "X509v3 Extended Key Usage: \n                TLS Web Server Authentication, TLS Web Client Authentication\n"
                ),
                "{text}"
            );
            assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
            assert!(!text.contains("Excluded:"), "{text}");
        }
    }

    /// A root kindling did not make (planted, or made with other names) is refused, not used:
    /// by the library, `ca show`, `ca trust` and `env create`'s CA step alike.
    #[test]
    fn pki_a_root_kindling_did_not_make_is_refused() {
        // An unconstrained root, planted where kindling keeps its own.
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = pki::root_paths(dir.path());
        std::fs::create_dir_all(cert_path.parent().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
        let planted = params.self_signed(&key).unwrap();
        std::fs::write(&cert_path, planted.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let err = pki::load_root(dir.path(), &LocalNames::default()).unwrap_err();
        assert!(matches!(err, PkiError::Foreign { .. }), "{err:?}");
        let err = pki::ensure_env_ca(dir.path(), "dev", now()).unwrap_err();
        assert!(matches!(err, PkiError::Foreign { .. }), "{err:?}");
        for args in [&["ca", "show"][..], &["ca", "trust", "--dry-run"]] {
            refused_by_cli(dir.path(), args, "is not one kindling made");
        }
        // A root made with wider names than this user opted into: refused too, with the hint.
        let wide = tempfile::tempdir().unwrap();
        let names = LocalNames::with_extra(Some(".internal")).unwrap();
        pki::ensure_root(wide.path(), &names, now()).unwrap();
        let err = pki::load_root(wide.path(), &LocalNames::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("DNS:.internal"), "{err}");
        assert!(pki::load_root(wide.path(), &names).unwrap().is_some());
    }

    #[test]
    fn pki_name_constraints_reject_names_outside_local_ones() {
        let (dir, root, intermediate) = setup();
        for names in [
            &["example.com"][..],
            &["api.localhost", "bank.example"],
            &["10.0.0.1"],
            &["x.internal"],
            &["printer.local"],
            &["web.test"],
            &["db.svc"],
            &["a.cluster.local"],
        ] {
            let leaf = leaf(dir.path(), &intermediate, names);
            let (ok, text) = openssl_verify(&root, &intermediate, &leaf);
            assert!(!ok, "{names:?} was accepted: {text}");
            assert!(
                text.contains("permitted subtree violation"),
                "{names:?}: {text}"
            );
        }
    }

    #[test]
    fn pki_root_and_intermediate_have_the_right_shape() {
        let (_dir, root, intermediate) = setup();
        let r = root.info().unwrap();
        assert!(r.is_ca);
        assert_eq!(r.path_len, Some(1));
        assert!(r.subject.contains("kindling local CA"), "{}", r.subject);
        assert!(
            r.permitted.contains(&"DNS:.localhost".to_string()),
            "{:?}",
            r.permitted
        );
        assert!(
            r.permitted.contains(&"IP:127.0.0.0/8".to_string()),
            "{:?}",
            r.permitted
        );
        assert!(
            r.permitted.contains(&"IP:::1/128".to_string()),
            "{:?}",
            r.permitted
        );
        assert!(r.not_after - now() > Duration::days(3649));
        // Exactly the names the README documents, in root and intermediate alike.
        let documented = [
            "DNS:localhost",
            "DNS:.localhost",
            "IP:127.0.0.0/8",
            "IP:::1/128",
            "email:.invalid",
            "URI:.invalid",
        ];
        assert_eq!(r.permitted, documented);
        assert_eq!(intermediate.info().unwrap().permitted, documented);
        let i = intermediate.info().unwrap();
        assert_eq!(i.path_len, Some(0));
        assert_eq!(i.issuer, r.subject);
        // Short-lived: 30 to 90 days.
        let lifetime = i.not_after - now();
        assert!(
            lifetime > Duration::days(30) && lifetime <= Duration::days(90),
            "{lifetime}"
        );
        // openssl agrees on the extensions that matter.
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&root.cert_path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    }

    #[test]
    fn pki_key_files_are_private_and_certificates_readable() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, root, intermediate) = setup();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.key_path), 0o600);
        assert_eq!(mode(&intermediate.key_path), 0o600);
        assert_eq!(mode(&root.cert_path), 0o644);
    }

    #[test]
    fn pki_root_is_created_once_and_reused() {
        let (dir, root, intermediate) = setup();
        let again = pki::ensure_root(dir.path(), &LocalNames::default(), now()).unwrap();
        assert_eq!(
            again.info().unwrap().fingerprint_sha256,
            root.info().unwrap().fingerprint_sha256
        );
        let (same, issued) =
            pki::ensure_intermediate(dir.path(), "dev", &again, &LocalNames::default(), now())
                .unwrap();
        assert_eq!(issued, Issued::Reused);
        assert_eq!(same.cert_pem, intermediate.cert_pem);
    }

    #[test]
    fn pki_intermediate_is_renewed_near_expiry_and_envs_get_their_own() {
        let (dir, root, intermediate) = setup();
        let later = now() + Duration::days(340);
        let (renewed, issued) =
            pki::ensure_intermediate(dir.path(), "dev", &root, &LocalNames::default(), later)
                .unwrap();
        assert_eq!(issued, Issued::Renewed);
        assert_ne!(renewed.cert_pem, intermediate.cert_pem);
        let (other, _) =
            pki::ensure_intermediate(dir.path(), "ci", &root, &LocalNames::default(), now())
                .unwrap();
        assert_ne!(other.key_pem, intermediate.key_pem);
        assert!(other.cert_path.starts_with(dir.path().join("envs/ci")));
    }

    #[test]
    fn pki_truncated_key_is_a_clear_error_not_a_new_ca() {
        let (dir, root, _) = setup();
        let key = std::fs::read_to_string(&root.key_path).unwrap();
        std::fs::write(&root.key_path, &key[..key.len() / 2]).unwrap();
        let err = pki::ensure_root(dir.path(), &LocalNames::default(), now()).unwrap_err();
        assert!(matches!(err, PkiError::Corrupt { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("root-key.pem: the private key cannot be read"),
            "{text}"
        );
        assert!(text.contains("damaged or truncated"), "{text}");
        // Nothing was overwritten.
        assert_eq!(
            std::fs::read_to_string(&root.key_path).unwrap(),
            key[..key.len() / 2]
        );
    }

    #[test]
    fn pki_mismatched_pair_and_missing_half_are_errors() {
        let (dir, root, _) = setup();
        let other = KeyPair::generate().unwrap();
        std::fs::write(&root.key_path, other.serialize_pem()).unwrap();
        let err = pki::load_root(dir.path(), &LocalNames::default()).unwrap_err();
        assert!(matches!(err, PkiError::Mismatch { .. }), "{err:?}");
        std::fs::remove_file(&root.key_path).unwrap();
        let err = pki::ensure_root(dir.path(), &LocalNames::default(), now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root-key.pem: root CA cannot be read: it is missing while"),
            "{err}"
        );
    }

    #[test]
    fn pki_root_ca_secret_carries_the_chain_the_key_and_the_root() {
        let (_dir, root, intermediate) = setup();
        let secret = pki::root_ca_secret(&intermediate, &root, pki::CA_SECRET.0);
        assert_eq!(secret["metadata"]["name"], "root-ca-secret");
        assert_eq!(secret["metadata"]["namespace"], "cert-manager");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let data = secret["data"].as_object().unwrap();
        assert_eq!(data.len(), 3);
        let decode = |k: &str| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(data[k].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let chain = decode("tls.crt");
        assert_eq!(chain.matches("-----BEGIN CERTIFICATE-----").count(), 2);
        assert!(chain.starts_with(intermediate.cert_pem.trim_end()));
        assert!(decode("tls.key").contains("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(decode("tls.key"), intermediate.key_pem);
        assert_eq!(decode("ca.crt"), root.cert_pem);
        // The root key is nowhere in it.
        let everything = format!("{}{}{}", chain, decode("tls.key"), decode("ca.crt"));
        assert!(!everything.contains(root.key_pem.lines().nth(1).unwrap()));
    }

    #[test]
    fn pki_expiry_warnings_within_30_days() {
        let (_dir, root, _) = setup();
        let info = root.info().unwrap();
        assert!(pki::expiry_warnings(now(), &[("root", &info)]).is_empty());
        let soon = info.not_after - Duration::days(10);
        let w = pki::expiry_warnings(soon, &[("root", &info)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("root expires in 10 days"), "{w:?}");
        let after = info.not_after + Duration::days(1);
        assert!(pki::expiry_warnings(after, &[("root", &info)])[0].starts_with("root expired on"));
    }

    /// README: the CA is "kept in the data directory (`~/.local/share/kindling/ca`)" when
    /// KINDLING_DATA_DIR is not set (XDG_DATA_HOME moves it, as the XDG spec says).
    #[test]
    fn pki_ca_default_location_is_the_users_data_directory() {
        let home = tempfile::tempdir().unwrap();
        let cert_path = |xdg: Option<&Path>| {
            let mut c = assert_cmd::Command::cargo_bin("kindling").unwrap();
            c.env_remove("KINDLING_DATA_DIR")
                .env_remove("XDG_DATA_HOME")
                .env("HOME", home.path());
            if let Some(x) = xdg {
                c.env("XDG_DATA_HOME", x);
            }
            let out = c.args(["ca", "show", "--output", "json"]).output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["exists"], false, "{v}");
            v["certPath"].as_str().unwrap().to_string()
        };
        assert_eq!(
            cert_path(None),
            home.path()
                .join(".local/share/kindling/ca/root.pem")
                .display()
                .to_string()
        );
        let xdg = home.path().join("xdg");
        assert_eq!(
            cert_path(Some(&xdg)),
            xdg.join("kindling/ca/root.pem").display().to_string()
        );
    }

    /// A secret is never written through a symlink planted where kindling keeps it (the key
    /// file, or its directory), nor into a directory someone else owns.
    #[test]
    fn pki_secrets_are_not_written_through_planted_links_or_into_foreign_dirs() {
        use kindling::paths::write_atomic;
        let (dir, _root, _) = setup();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        // A link at the key file of a new env's intermediate.
        let (_, key_path) = pki::intermediate_paths(dir.path(), "linked-key");
        std::fs::create_dir_all(key_path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("stolen-key.pem"), &key_path).unwrap();
        let err = pki::ensure_env_ca(dir.path(), "linked-key", now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(!elsewhere.join("stolen-key.pem").exists());
        // A link as the env's ca/ directory.
        let (cert_path, _) = pki::intermediate_paths(dir.path(), "linked-dir");
        std::fs::create_dir_all(cert_path.parent().unwrap().parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, cert_path.parent().unwrap()).unwrap();
        let err = pki::ensure_env_ca(dir.path(), "linked-dir", now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // Public files may go where the user points (an export through a link is fine).
        write_atomic(&elsewhere.join("root.pem"), b"cert", 0o644).unwrap();
        // A directory of another user's (only root can make one to test with).
        if super::common::is_root() {
            let foreign = dir.path().join("foreign");
            std::fs::create_dir_all(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let err = write_atomic(&foreign.join("key.pem"), b"secret", 0o600)
                .unwrap_err()
                .to_string();
            assert!(err.contains("belongs to uid 65534"), "{err}");
            assert!(!foreign.join("key.pem").exists());
        }
    }

    /// A data dir that belongs to another user is refused by the commands that keep secrets
    /// there (`ca`, `env`), before anything is read or written (only root can make one here).
    #[test]
    fn pki_a_data_dir_of_another_user_is_refused() {
        if !super::common::is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
        for args in [
            &["ca", "show"][..],
            &["env", "list"],
            &["cache", "status"],
            &["engine", "manifests"],
        ] {
            refused_by_cli(&data, args, "belongs to uid 65534, not to you");
        }
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        // Its own data dir is fine.
        std::os::unix::fs::chown(&data, Some(0), Some(0)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(["ca", "show"])
            .env("KINDLING_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("not to you"),
            "{out:?}"
        );
    }

    /// Fake system-store tools (`name`, shell body) in `bin`, and a PATH that finds them first:
    /// `ca trust` and `ca untrust` then run for real without touching the system store.
    #[cfg(target_os = "linux")]
    fn fake_tools(bin: &Path, tools: &[(&str, String)]) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(bin).unwrap();
        for (name, body) in tools {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `ca trust` installs exactly the certificate it read and checked: the data dir's file is
    /// not read again by the commands that run after the password prompt. Here the store's
    /// `install` swaps the data dir's root.pem before copying its source, as a local attacker
    /// racing the prompt would.
    #[cfg(target_os = "linux")]
    #[test]
    fn pki_ca_trust_installs_the_bytes_it_checked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = pki::ensure_root(&data, &LocalNames::default(), now()).unwrap();
        let record = dir.path().join("installed.pem");
        let path = fake_tools(
            &dir.path().join("bin"),
            &[
                // install -m 0644 SOURCE ANCHOR (Debian's store)
                (
                    "install",
                    format!(
                        "echo swapped > '{}'\necho \"$3\" > '{}.source'\ncat \"$3\" > '{}'",
                        root.cert_path.display(),
                        record.display(),
                        record.display()
                    ),
                ),
                ("update-ca-certificates", "exit 0".to_string()),
                ("sudo", "exec \"$@\"".to_string()),
            ],
        );
        let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(["ca", "trust"])
            .env("KINDLING_DATA_DIR", &data)
            // No browser databases of the user's are touched.
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env("PATH", path)
            .env_remove(pki::CA_NAMES_VAR)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&record).unwrap(), root.cert_pem);
        let source = std::fs::read_to_string(record.with_extension("pem.source")).unwrap();
        assert!(
            !source.trim().starts_with(data.to_str().unwrap()),
            "{source}"
        );
        // The staged copy is gone again.
        assert!(!std::path::Path::new(source.trim()).exists(), "{source}");
    }

    /// Whether NSS's certutil is here to test with; on CI (`CI=true`) its absence fails the
    /// test instead of skipping it.
    #[cfg(target_os = "linux")]
    fn certutil_present() -> bool {
        if which::which("certutil").is_ok() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "NSS's certutil is required here (scripts/test.sh installs libnss3-tools)"
        );
        eprintln!("skipped: no certutil (libnss3-tools)");
        false
    }

    /// `certutil ARGS`: (success, stdout).
    #[cfg(target_os = "linux")]
    fn certutil(args: &[&str]) -> (bool, String) {
        let out = Command::new("certutil").args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The browsers on Linux read NSS databases, not the system store: `ca trust` adds the root
    /// to every one found under HOME (Chrome's SQLite `~/.pki/nssdb`, an old Firefox profile's
    /// Berkeley DB), trusted as a TLS CA (`C,,`); `ca untrust` deletes it from each, and a
    /// second `ca untrust` has nothing left to do and succeeds. Real databases, real certutil;
    /// the system store's tools are fakes.
    #[cfg(target_os = "linux")]
    #[test]
    fn pki_ca_trust_installs_into_every_nss_database_found_and_untrust_removes_it() {
        if !certutil_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let data = dir.path().join("data");
        let chrome = home.join(".pki/nssdb");
        let firefox = home.join(".mozilla/firefox/old.default");
        let databases = [
            format!("sql:{}", chrome.display()),
            format!("dbm:{}", firefox.display()),
        ];
        for db in &databases {
            let dir = db.split_once(':').unwrap().1;
            std::fs::create_dir_all(dir).unwrap();
            let (made, _) = certutil(&["-N", "-d", db, "--empty-password"]);
            assert!(made, "certutil -N -d {db}");
        }
        // A profile Firefox never started in has no database: left alone.
        std::fs::create_dir_all(home.join(".mozilla/firefox/new.default")).unwrap();
        let path = fake_tools(
            &dir.path().join("bin"),
            &[
                ("install", "exit 0".to_string()),
                ("rm", "exit 0".to_string()),
                ("update-ca-certificates", "exit 0".to_string()),
                ("sudo", "exec \"$@\"".to_string()),
            ],
        );
        let kindling = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
                .args(args)
                .env("KINDLING_DATA_DIR", &data)
                .env("HOME", &home)
                .env_remove("XDG_CONFIG_HOME")
                .env("PATH", &path)
                .env_remove(pki::CA_NAMES_VAR)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{args:?}: {said}");
            (String::from_utf8_lossy(&out.stdout).into_owned(), said)
        };

        let (_, said) = kindling(&["ca", "trust"]);
        let root = pki::load_root(&data, &LocalNames::default())
            .unwrap()
            .unwrap();
        let name = format!("kindling-{}", root.info().unwrap().short_id());
        for db in &databases {
            // Announced before it ran, without sudo.
            assert!(
                said.contains(&format!("\n  certutil -A -d {db} -t C,, -n {name} -i ")),
                "{said}"
            );
            let (listed, list) = certutil(&["-L", "-d", db]);
            assert!(listed, "{db}");
            let line = list.lines().find(|l| l.starts_with(&name));
            assert_eq!(
                line.map(|l| l.split_whitespace().collect::<Vec<_>>()),
                Some(vec![name.as_str(), "C,,"]),
                "{db}: {list}"
            );
            // The very certificate kindling made.
            let (found, pem) = certutil(&["-L", "-d", db, "-n", &name, "-a"]);
            assert!(found, "{db}");
            assert_eq!(
                pem.replace("\r\n", "\n").trim(),
                root.cert_pem.trim(),
                "{db}"
            );
        }
        let (show, _) = kindling(&["ca", "show", "--output", "json"]);
        let shown: serde_json::Value = serde_json::from_str(&show).unwrap();
        assert_eq!(
            shown["nss"],
            serde_json::json!([
                { "database": databases[0], "trusted": true },
                { "database": databases[1], "trusted": true },
            ])
        );

        let (_, said) = kindling(&["ca", "untrust"]);
        for db in &databases {
            assert!(
                said.contains(&format!("\n  certutil -D -d {db} -n {name}")),
                "{said}"
            );
            let (still_there, _) = certutil(&["-L", "-d", db, "-n", &name]);
            assert!(!still_there, "{db} still holds {name}");
        }
        let (show, _) = kindling(&["ca", "show", "--output", "json"]);
        let shown: serde_json::Value = serde_json::from_str(&show).unwrap();
        assert_eq!(shown["nss"][0]["trusted"], false);
        assert_eq!(shown["nss"][1]["trusted"], false);
        // Again: no database holds it, so no certutil command is planned, and all is well.
        let (_, said) = kindling(&["ca", "untrust"]);
        assert!(!said.contains("certutil"), "{said}");
    }

    #[test]
    fn pki_ca_cli_show_export_and_trust_plan() {
        let dir = tempfile::tempdir().unwrap();
        let kindling = || {
            let mut c = assert_cmd::Command::cargo_bin("kindling").unwrap();
            c.env("KINDLING_DATA_DIR", dir.path())
                .env("HOME", dir.path())
                .env_remove("XDG_CONFIG_HOME");
            c
        };
        let out = kindling()
            .args(["ca", "show", "--output", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["exists"], false);
        let pem = kindling().args(["ca", "export"]).output().unwrap();
        let pem = String::from_utf8(pem.stdout).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let out = kindling()
            .args(["ca", "show", "--output", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["exists"], true);
        let info = pki::CertInfo::from_pem(&pem, Path::new("x")).unwrap();
        assert_eq!(
            v["certificate"]["fingerprintSha256"],
            info.fingerprint_sha256
        );
        let plan = kindling()
            .args(["ca", "trust", "--dry-run", "--output", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(v["ran"], false);
        // Whatever the store, the plan names the CA file or explains the manual steps.
        let text = v["plan"].to_string();
        assert!(text.contains("root.pem"), "{text}");
        // untrust: the plan removes what trust installed (Debian/Fedora: the anchor file named
        // after the root; p11-kit and macOS: the root's file; elsewhere manual steps naming it).
        let undo = kindling()
            .args(["ca", "untrust", "--dry-run", "--output", "json"])
            .output()
            .unwrap();
        assert!(undo.status.success());
        let u: serde_json::Value = serde_json::from_slice(&undo.stdout).unwrap();
        assert_eq!(u["ran"], false);
        let undo_text = u["plan"].to_string();
        assert!(
            undo_text.contains(&format!("kindling-{}", info.short_id()))
                || undo_text.contains("root.pem"),
            "{undo_text}"
        );
        // With no root there is nothing to untrust: a clear error, in one JSON document.
        let empty = tempfile::tempdir().unwrap();
        let none = assert_cmd::Command::cargo_bin("kindling")
            .unwrap()
            .env("KINDLING_DATA_DIR", empty.path())
            .args(["ca", "untrust", "--output", "json"])
            .output()
            .unwrap();
        assert_eq!(none.status.code(), Some(1));
        let e: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
        assert!(
            e["error"].as_str().unwrap().contains("nothing to untrust"),
            "{e}"
        );
    }

    /// Whatever the umask, the data dir and the CA directory kindling makes are 0700 and the
    /// key 0600; a key someone made readable is warned about by `ca show` and `doctor`.
    #[test]
    fn pki_ca_directories_are_private_under_any_umask_and_exposure_is_warned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let bin = env!("CARGO_BIN_EXE_kindling");
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("umask 000; exec '{bin}' ca export --output json"),
            ])
            .env("KINDLING_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("ca")), 0o700);
        let (cert, key) = pki::root_paths(&data);
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&cert), 0o644);
        // No temporary file is left beside them.
        let left: Vec<_> = std::fs::read_dir(data.join("ca"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let show = std::process::Command::new(bin)
            .args(["ca", "show", "--output", "json"])
            .env("KINDLING_DATA_DIR", &data)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert!(
            v["warnings"]
                .to_string()
                .contains("is readable by others (mode 644)"),
            "{v}"
        );
        let doctor = std::process::Command::new(bin)
            .args(["doctor", "--output", "json"])
            .env("KINDLING_DATA_DIR", &data)
            .output()
            .unwrap();
        let d: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
        let finding = d["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "ca key")
            .cloned()
            .unwrap_or_else(|| panic!("{d}"));
        assert_eq!(finding["status"], "warn");
        assert!(
            finding["fix"].as_str().unwrap().contains("chmod 600"),
            "{finding}"
        );
    }
}

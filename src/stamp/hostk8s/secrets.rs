//! HostK8s secret contracts (`hostk8s.secrets.yaml`) as the stamp's bootstrap secrets.

// The loader's helpers and types are this part's too.
use super::*;

#[derive(Deserialize)]
struct SecretContract {
    spec: SecretContractSpec,
}

#[derive(Deserialize)]
struct SecretContractSpec {
    #[serde(default)]
    secrets: Vec<ContractSecret>,
}

#[derive(Deserialize)]
struct ContractSecret {
    name: String,
    namespace: String,
    #[serde(default)]
    data: Vec<ContractKey>,
}

#[derive(Deserialize)]
struct ContractKey {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    generate: Option<String>,
    #[serde(default)]
    length: Option<usize>,
}

/// HostK8s secret contracts (`hostk8s.secrets.yaml`) become bootstrap secrets.
pub(super) fn load_secret_contract(
    dir: &Path,
    problems: &mut Vec<Problem>,
) -> Result<Vec<BootstrapSecret>, StampError> {
    let file = dir.join("hostk8s.secrets.yaml");
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let text = read_text(&file)?;
    let contract: SecretContract =
        serde_yaml_ng::from_str(&text).map_err(|e| StampError::yaml_in(&file, &e, &text))?;
    let mut secrets = Vec::new();
    for s in contract.spec.secrets {
        let mut keys = Vec::new();
        for k in s.data {
            let value = match (k.value, k.generate.as_deref()) {
                (Some(v), None) => SecretValue::Literal(v),
                (None, Some("password" | "token" | "hex" | "random")) => SecretValue::Generate {
                    length: k.length.unwrap_or(32),
                },
                (None, Some(other)) => {
                    problems.push(Problem::new(
                        &file,
                        None,
                        format!("spec.secrets[{}].data[{}].generate", s.name, k.key),
                        format!("'{other}' is not a generator kindling knows"),
                        "use generate: password (with an optional length)",
                    ));
                    continue;
                }
                _ => {
                    problems.push(Problem::new(
                        &file,
                        None,
                        format!("spec.secrets[{}].data[{}]", s.name, k.key),
                        "needs exactly one of `value` or `generate`",
                        "give a literal `value` or `generate: password`",
                    ));
                    continue;
                }
            };
            keys.push(SecretKey { key: k.key, value });
        }
        secrets.push(BootstrapSecret {
            name: s.name,
            namespace: s.namespace,
            keys,
        });
    }
    Ok(secrets)
}

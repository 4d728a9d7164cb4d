//! HostK8s secret contracts (`hostk8s.secrets.yaml`) as the stamp's bootstrap secrets.

// The loader's helpers and types are this part's too.
use super::*;
use crate::stamp::generator::{DEFAULT_LENGTH, GeneratorKind, SecretGenerator};

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

/// HostK8s secret contracts (`hostk8s.secrets.yaml`) become bootstrap secrets. What is
/// generated follows HostK8s (danielscholl-osdu/hostk8s@2add0a5,
/// infra/scripts/manage-secrets.py `generate_value` and `process_secret_data`,
/// infra/scripts/hostk8s_common.py `generate_password|token|hex`).
pub(super) fn load_secret_contract(
    dir: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
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
            // manage-secrets.py reads an empty `generate` as none (`elif generate_type:`).
            let generate = k.generate.as_deref().filter(|g| !g.is_empty());
            let value = match (k.value, generate) {
                (Some(v), None) => SecretValue::Literal(v),
                (None, Some(name)) => {
                    let field = format!("spec.secrets[{}].data[{}]", s.name, k.key);
                    SecretValue::Generate(contract_generator(
                        &file, &field, name, k.length, warnings,
                    ))
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
            through_vault: false,
        });
    }
    Ok(secrets)
}

/// The generator a contract's `generate: NAME` (and `length`) means under HostK8s. kindling's
/// own types (`fernet`, `base64`, `unambiguous`) are made as named: upstream HostK8s would make a
/// token of them, which no Fernet consumer accepts (its own airflow stack asks for
/// `generate: fernet`).
fn contract_generator(
    file: &Path,
    field: &str,
    name: &str,
    length: Option<usize>,
    warnings: &mut Vec<Problem>,
) -> SecretGenerator {
    let Some(kind) = GeneratorKind::from_name(name) else {
        // manage-secrets.py: `else: # Default to token for unknown types` (silently there).
        warnings.push(Problem::new(
            file,
            None,
            format!("{field}.generate"),
            format!(
                "'{name}' is not a generator HostK8s or kindling knows: a token (A-Za-z0-9, {} characters) is generated instead, as HostK8s does",
                length.unwrap_or(DEFAULT_LENGTH)
            ),
            format!(
                "known types: {} (password, token, hex and uuid are HostK8s' own)",
                GeneratorKind::known_names()
            ),
        ));
        return SecretGenerator::new(GeneratorKind::Token, length);
    };
    let length = match (kind, length) {
        // docs/secret-contracts.md: "UUID generation ignores `length`"; a Fernet key has one
        // size too.
        (k, _) if k.is_fixed() => None,
        // hostk8s_common.py: `secrets.token_hex(length // 2)`, whole bytes.
        (GeneratorKind::Hex, Some(n)) if n % 2 == 1 => {
            warnings.push(Problem::new(
                file,
                None,
                format!("{field}.length"),
                format!(
                    "{n} is odd: HostK8s makes whole bytes of hex, so the value has {} characters",
                    n - 1
                ),
                format!("write length: {} (or {})", n - 1, n + 1),
            ));
            Some(n - 1)
        }
        (_, length) => length,
    };
    SecretGenerator::new(kind, length)
}

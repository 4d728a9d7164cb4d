//! HostK8s storage contracts (`hostk8s.storage.yaml`) as the stamp's storage.

use super::*;
use crate::stamp::storage::{self, Naming, StorageDir, StorageDirFile};

/// `hostk8s.io/v1` `StorageContract` (danielscholl-osdu/hostk8s@2add0a5,
/// docs/storage-contracts.md "Schema Definition").
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageContract {
    api_version: String,
    kind: String,
    metadata: ContractMetadata,
    spec: StorageContractSpec,
}

#[derive(Deserialize)]
struct ContractMetadata {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct StorageContractSpec {
    #[serde(default)]
    directories: Vec<StorageDirFile>,
}

/// The stack's storage contract, checked as HostK8s checks it before `make up` makes
/// anything (manage-storage.py `validate_contract`, `validate_directory`): a wrong apiVersion
/// or kind, a name that is not the stack's, or no directories stop the stack there too.
pub(super) fn load_storage_contract(
    dir: &Path,
    stack: &str,
    problems: &mut Vec<Problem>,
) -> Result<Vec<StorageDir>, StampError> {
    let file = dir.join("hostk8s.storage.yaml");
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let text = read_text(&file)?;
    let contract: StorageContract =
        serde_yaml_ng::from_str(&text).map_err(|e| StampError::yaml_in(&file, &e, &text))?;
    let mut problem = |field: &str, message: String, help: String| {
        problems.push(Problem::new(&file, None, field, message, help))
    };
    if contract.api_version != "hostk8s.io/v1" {
        problem(
            "apiVersion",
            format!(
                "'{}' is not a storage contract version",
                contract.api_version
            ),
            "write apiVersion: hostk8s.io/v1".into(),
        );
    }
    if contract.kind != "StorageContract" {
        problem(
            "kind",
            format!("'{}' is not a storage contract", contract.kind),
            "write kind: StorageContract".into(),
        );
    }
    // HostK8s keeps a stack's data apart by this name.
    if contract.metadata.name.as_deref() != Some(stack) {
        problem(
            "metadata.name",
            format!(
                "'{}' is not the stack's name; HostK8s refuses the contract",
                contract.metadata.name.unwrap_or_default()
            ),
            format!("write metadata.name: {stack}"),
        );
    }
    if contract.spec.directories.is_empty() {
        problem(
            "spec.directories",
            "is empty; HostK8s refuses a contract without directories".into(),
            "declare a directory, or remove hostk8s.storage.yaml".into(),
        );
    }
    Ok(storage::check(
        &file,
        "spec.directories",
        contract.spec.directories,
        Naming::Hostk8s { stack },
        problems,
    ))
}

//! The command-line flags a controller runs with, read from its workload's containers:
//! several of upstream's choices (cert-manager's `--cluster-resource-namespace`, Flux's
//! `--default-service-account`) are flags, not objects.

use serde_json::Value;

/// Every argument of every container of a workload (Deployment, StatefulSet).
pub fn container_args(workload: &Value) -> Vec<String> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["args"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// A flag's value, written `--flag=value` or `--flag value` (Go's flag and pflag take both);
/// given twice (a chart's `extraArgs` after its own), the last one counts, as the parser sets
/// the value once per occurrence.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    flag_values(args, name).pop()
}

/// Every value given to a flag, in order: what a pflag string slice collects from repeated
/// occurrences (spf13/pflag string_slice.go `Set` appends after the first).
pub fn flag_values<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.iter()
        .enumerate()
        .filter_map(|(i, a)| {
            if let Some(value) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(value);
            }
            (a == name)
                .then(|| args.get(i + 1).map(String::as_str))
                .flatten()
        })
        .collect()
}

/// A boolean flag's value, or None when it is not given. pflag's bool flags take no separate
/// value: `--flag` alone is true (`NoOptDefVal = "true"`), `--flag=V` is `strconv.ParseBool(V)`
/// (spf13/pflag bool.go `BoolVarP`, `boolValue.Set`); the last occurrence counts.
pub fn bool_flag(args: &[String], name: &str) -> Option<bool> {
    args.iter().rev().find_map(|a| {
        if a == name {
            return Some(true);
        }
        match a.strip_prefix(name)?.strip_prefix('=')? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            // The controller would not start with another value.
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_in_both_spellings() {
        let workload = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"args": ["--v=2", "--cluster-resource-namespace=$(POD_NAMESPACE)"]},
            {"args": ["--leader-election-namespace", "kube-system"]}]}}}});
        let args = container_args(&workload);
        assert_eq!(
            flag(&args, "--cluster-resource-namespace"),
            Some("$(POD_NAMESPACE)")
        );
        assert_eq!(
            flag(&args, "--leader-election-namespace"),
            Some("kube-system")
        );
        assert_eq!(flag(&args, "--namespace"), None);
        assert_eq!(flag(&args, "--v"), Some("2"));
        let twice: Vec<String> = [
            "--cluster-resource-namespace=a",
            "--cluster-resource-namespace",
            "b",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(flag(&twice, "--cluster-resource-namespace"), Some("b"));
    }

    #[test]
    fn bool_flags_take_no_separate_value() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let name = "--watch-all-namespaces";
        assert_eq!(
            bool_flag(&args(&["--watch-all-namespaces"]), name),
            Some(true)
        );
        assert_eq!(
            bool_flag(&args(&["--watch-all-namespaces=false"]), name),
            Some(false)
        );
        assert_eq!(
            bool_flag(&args(&["--watch-all-namespaces=F"]), name),
            Some(false)
        );
        // `--flag false` is the flag (true) and a stray argument.
        assert_eq!(
            bool_flag(&args(&["--watch-all-namespaces", "false"]), name),
            Some(true)
        );
        assert_eq!(
            bool_flag(
                &args(&["--watch-all-namespaces=false", "--watch-all-namespaces"]),
                name
            ),
            Some(true)
        );
        assert_eq!(
            bool_flag(&args(&["--watch-all-namespacesx=false"]), name),
            None
        );
        assert_eq!(bool_flag(&args(&["--v=2"]), name), None);
    }
}

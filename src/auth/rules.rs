//! Which scope each RPC needs: the one table authorization reads.
//!
//! The table names every RPC of every mediastore service. The server
//! refuses to start if an RPC of its descriptor set has no row (a test
//! checks the same), so a new RPC cannot be served without a decision
//! about who may call it. The README prints the table
//! ([`markdown_table`]); a test keeps the two equal.

use prost::Message as _;

use crate::{domain::Scope, pb};

/// What a call needs to be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Nothing: health checks (Kubernetes probes) and reflection (grpcurl
    /// discovery) stay open.
    Open,
    /// A valid key with this scope.
    Scope(Scope),
    /// A valid key with this scope, or no credentials at all for a public
    /// media (the handler finds its owner, see [`PUBLIC_READS`]).
    ScopeOrPublic(Scope),
    /// A path no service serves: a valid key, then tonic's UNIMPLEMENTED
    /// (so probing for RPCs needs a key too).
    Unknown,
}

/// Services that answer without credentials.
const OPEN_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Every mediastore RPC, as `service/method`, and the scope it needs.
pub const RPC_SCOPES: &[(&str, Scope)] = &[
    (
        "mediastore.v1.MediaService/UploadMedia",
        Scope::UploadsWrite,
    ),
    ("mediastore.v1.MediaService/ReadMedia", Scope::MediaRead),
    ("mediastore.v1.MediaService/GetRendition", Scope::MediaRead),
    (
        "mediastore.v1.MediaService/ListRenditions",
        Scope::MediaRead,
    ),
    ("mediastore.v1.MediaService/GetMedia", Scope::MediaRead),
    ("mediastore.v1.MediaService/BatchGetMedia", Scope::MediaRead),
    ("mediastore.v1.MediaService/ListMedia", Scope::MediaRead),
    ("mediastore.v1.MediaService/UpdateMedia", Scope::MediaWrite),
    ("mediastore.v1.MediaService/MoveMedia", Scope::MediaWrite),
    (
        "mediastore.v1.MediaService/BatchMoveMedia",
        Scope::MediaWrite,
    ),
    ("mediastore.v1.MediaService/DeleteMedia", Scope::MediaDelete),
    (
        "mediastore.v1.MediaService/BatchDeleteMedia",
        Scope::MediaDelete,
    ),
    ("mediastore.v1.MediaService/GetMediaUrl", Scope::MediaRead),
    (
        "mediastore.v1.MediaService/ReanalyzeMedia",
        Scope::MediaWrite,
    ),
    (
        "mediastore.v1.MediaService/ImportMedia",
        Scope::UploadsWrite,
    ),
    (
        "mediastore.v1.FolderService/GetRootFolder",
        Scope::MediaRead,
    ),
    ("mediastore.v1.FolderService/GetFolder", Scope::MediaRead),
    ("mediastore.v1.FolderService/ListFolders", Scope::MediaRead),
    (
        "mediastore.v1.FolderService/GetFolderTree",
        Scope::MediaRead,
    ),
    (
        "mediastore.v1.FolderService/CreateFolder",
        Scope::FoldersWrite,
    ),
    (
        "mediastore.v1.FolderService/RenameFolder",
        Scope::FoldersWrite,
    ),
    (
        "mediastore.v1.FolderService/MoveFolder",
        Scope::FoldersWrite,
    ),
    (
        "mediastore.v1.FolderService/SetFolderPublic",
        Scope::FoldersWrite,
    ),
    (
        "mediastore.v1.FolderService/DeleteFolder",
        Scope::FoldersDelete,
    ),
    ("mediastore.v1.BindingService/AddBinding", Scope::MediaWrite),
    (
        "mediastore.v1.BindingService/RemoveBinding",
        Scope::MediaWrite,
    ),
    (
        "mediastore.v1.BindingService/ListBindings",
        Scope::MediaRead,
    ),
    (
        "mediastore.v1.UploadService/StartUpload",
        Scope::UploadsWrite,
    ),
    (
        "mediastore.v1.UploadService/WriteUpload",
        Scope::UploadsWrite,
    ),
    (
        "mediastore.v1.UploadService/QueryUpload",
        Scope::UploadsWrite,
    ),
    (
        "mediastore.v1.UploadService/CancelUpload",
        Scope::UploadsWrite,
    ),
    ("mediastore.v1.AdminService/CollectGarbage", Scope::Admin),
    ("mediastore.v1.AdminService/Scrub", Scope::Admin),
    (
        "mediastore.v1.AdminService/StartCollectGarbage",
        Scope::Admin,
    ),
    ("mediastore.v1.AdminService/StartScrub", Scope::Admin),
    ("mediastore.v1.JobService/GetJob", Scope::JobsRead),
    ("mediastore.v1.JobService/ListJobs", Scope::JobsRead),
    ("mediastore.v1.JobService/WatchJob", Scope::JobsRead),
    ("mediastore.v1.JobService/CancelJob", Scope::JobsWrite),
    ("mediastore.v1.JobService/RetryJob", Scope::JobsWrite),
    ("mediastore.v1.JobService/DeleteJob", Scope::JobsWrite),
    ("mediastore.v1.AccessService/CreateTenant", Scope::Admin),
    ("mediastore.v1.AccessService/ListTenants", Scope::Admin),
    ("mediastore.v1.AccessService/DeleteTenant", Scope::Admin),
    ("mediastore.v1.AccessService/SetTenantQuota", Scope::Admin),
    ("mediastore.v1.AccessService/CreateApiKey", Scope::Admin),
    ("mediastore.v1.AccessService/ListApiKeys", Scope::Admin),
    ("mediastore.v1.AccessService/RevokeApiKey", Scope::Admin),
];

/// The RPCs that answer a caller without credentials for a public media:
/// reading its metadata, its bytes and its renditions. Listing is not
/// among them, so an anonymous caller never sees what else a tenant has.
pub const PUBLIC_READS: &[&str] = &[
    "mediastore.v1.MediaService/GetMedia",
    "mediastore.v1.MediaService/ReadMedia",
    "mediastore.v1.MediaService/GetRendition",
];

/// The rule for a request's path (`/service/method`).
pub fn rule_for(path: &str) -> Rule {
    let rpc = path.strip_prefix('/').unwrap_or(path);
    let service = rpc.split_once('/').map_or(rpc, |(s, _)| s);
    if OPEN_SERVICES.contains(&service) {
        return Rule::Open;
    }
    match RPC_SCOPES.iter().find(|(name, _)| *name == rpc) {
        None => Rule::Unknown,
        Some((_, scope)) if PUBLIC_READS.contains(&rpc) => Rule::ScopeOrPublic(*scope),
        Some((_, scope)) => Rule::Scope(*scope),
    }
}

/// Every RPC of the mediastore services, as `service/method`, read from
/// the descriptor set the server is built with.
pub fn served_rpcs() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap_or_default();
    let mut rpcs = Vec::new();
    for file in set.file {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            let service_name = format!("{package}.{}", service.name.unwrap_or_default());
            for method in service.method {
                rpcs.push(format!(
                    "{service_name}/{}",
                    method.name.unwrap_or_default()
                ));
            }
        }
    }
    rpcs
}

/// RPCs served without a row in [`RPC_SCOPES`]; empty when the table is
/// complete.
pub fn rpcs_without_rule() -> Vec<String> {
    served_rpcs()
        .into_iter()
        .filter(|rpc| !RPC_SCOPES.iter().any(|(name, _)| name == rpc))
        .collect()
}

/// The table as Markdown, as the README prints it.
pub fn markdown_table() -> String {
    let mut out = String::from("| RPC | scope |\n|---|---|\n");
    for (rpc, scope) in RPC_SCOPES {
        let short = rpc.strip_prefix("mediastore.v1.").unwrap_or(rpc);
        let public = if PUBLIC_READS.contains(rpc) {
            ", or none for a public media"
        } else {
            ""
        };
        out.push_str(&format!("| `{short}` | `{scope}`{public} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_rpc_has_exactly_one_row() {
        assert_eq!(rpcs_without_rule(), Vec::<String>::new());
        let served = served_rpcs();
        assert!(served.len() >= RPC_SCOPES.len(), "{served:?}");
        for (i, (rpc, _)) in RPC_SCOPES.iter().enumerate() {
            assert!(served.iter().any(|s| s == rpc), "{rpc} is not served");
            assert!(
                !RPC_SCOPES[i + 1..].iter().any(|(other, _)| other == rpc),
                "{rpc} has two rows"
            );
        }
    }

    #[test]
    fn paths_find_their_rule() {
        assert_eq!(
            rule_for("/mediastore.v1.MediaService/DeleteMedia"),
            Rule::Scope(Scope::MediaDelete)
        );
        assert_eq!(rule_for("/grpc.health.v1.Health/Check"), Rule::Open);
        assert_eq!(
            rule_for("/mediastore.v1.MediaService/ReadMedia"),
            Rule::ScopeOrPublic(Scope::MediaRead)
        );
        assert_eq!(
            rule_for("/mediastore.v1.MediaService/ListMedia"),
            Rule::Scope(Scope::MediaRead)
        );
        assert_eq!(
            rule_for("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Rule::Open
        );
        assert_eq!(rule_for("/mediastore.v1.MediaService/Nope"), Rule::Unknown);
        assert_eq!(rule_for("/grpc.health.v1.Healthy/Check"), Rule::Unknown);
        assert_eq!(rule_for(""), Rule::Unknown);
    }

    #[test]
    fn the_readme_prints_the_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md must contain the scope table exactly as `markdown_table()` prints it:\n{}",
            markdown_table()
        );
    }
}

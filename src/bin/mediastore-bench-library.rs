//! Media library benchmark: listing and tree latency on a large library.
//!
//! Seeds 1,000,000 media across 10,000 folders straight through the
//! repository (3 tags each from a skewed vocabulary of 1,000, titles of 3
//! words from 2,000), starts the server in-process on loopback and measures
//! p50 and p99 of, each through the generated client:
//!
//! - a 50-item page of one folder;
//! - a 50-item page of the whole tree from the root (recursive);
//! - a 50-item page filtered by one tag;
//! - a 50-item page of a text query (one title word);
//! - the whole folder tree (10,001 folders with their counts);
//!
//! against the baseline of the same run: `GetMedia` of one media by id,
//! the cheapest call there is. It prints each query's plan (EXPLAIN) too.
//!
//! `cargo run --release --bin mediastore-bench-library [-- --database-url postgres://...]`

use std::time::{Duration, Instant};

use clap::Parser;
use mediastore::{
    config::Config,
    domain::{
        Analysis, ContentHash, FolderId, FolderName, MAX_FOLDER_DEPTH, Media, MediaFilter, MediaId,
        MediaQuery, MediaType, Principal, TenantId, now_micros, year_month,
    },
    library::{Library, MAX_TREE_NODES},
    pb::v1::{
        self as pb, folder_service_client::FolderServiceClient,
        media_service_client::MediaServiceClient,
    },
    repo::{BlobClaim, FolderScope},
    server,
};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "mediastore media-library benchmark")]
struct Args {
    /// Media to seed.
    #[arg(long, default_value_t = 1_000_000)]
    media: usize,
    /// Folders to seed (100 top-level folders and the rest below them).
    #[arg(long, default_value_t = 10_000)]
    folders: usize,
    /// Calls measured per query.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Database URL (default: SQLite in a temporary data directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Directory for the temporary data directory.
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Data directory to keep after the run; a later run given the same
    /// directory (and database) measures the library seeded there instead
    /// of seeding again.
    #[arg(long)]
    keep_dir: Option<std::path::PathBuf>,
}

/// Tags in the vocabulary; tag `i` is drawn with a skew towards small `i`.
const TAGS: u64 = 1000;
/// Words titles are made of.
const WORDS: u64 = 2000;
/// Media per seeding transaction.
const SEED_BATCH: usize = 5000;

/// A small deterministic generator (SplitMix64): the same library every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Skewed: small values far more often (a few tags are common).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

fn tag(i: u64) -> String {
    format!("tag{i}")
}

/// Words that never contain one another, so a text query for one matches
/// only titles that hold that word.
fn word(i: u64) -> String {
    format!("k{i:04}q")
}

/// Principals that made the media (`created_by`), evenly.
const CREATORS: u64 = 50;
/// Their roles (`created_role`).
const ROLES: [&str; 5] = ["editor", "service", "uploader", "importer", "archivist"];
/// Projects (`project_id`), skewed like the tags.
const PROJECTS: u64 = 200;

fn creator(i: u64) -> String {
    format!("svc-{i:02}")
}

fn project(i: u64) -> String {
    format!("project-{i:03}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let work = tempfile::tempdir_in(&args.dir)?;
    let data_dir = args
        .keep_dir
        .clone()
        .unwrap_or_else(|| work.path().to_path_buf());
    let mut config = Config::with_data_dir(&data_dir);
    config.database_url = args.database_url.clone();
    config.health_check_secs = 3600;
    // What is measured here is the listing and the tree; what the key
    // check costs is mediastore-bench's (f).
    config.insecure_no_auth = true;
    let library = server::open_library(&config).await?;
    let tenant = TenantId::DEFAULT;

    let existing = library.folder_tree(tenant, None, 0).await?;
    let (folders, ids) = if existing.len() > 1 {
        let folders: Vec<FolderId> = existing[1..].iter().map(|f| f.id).collect();
        let (some, _) = library
            .list(tenant, &MediaQuery::default(), None, 1000, false)
            .await?;
        println!(
            "reusing the {} folders seeded in {}",
            folders.len(),
            data_dir.display()
        );
        (folders, some.iter().map(|m| m.id).collect::<Vec<_>>())
    } else {
        let started = Instant::now();
        let folders = seed_folders(&library, args.folders).await?;
        println!(
            "seeded {} folders in {:.1?}",
            folders.len(),
            started.elapsed()
        );
        let started = Instant::now();
        let ids = seed_media(&library, &folders, args.media).await?;
        println!("seeded {} media in {:.1?}", ids.len(), started.elapsed());
        (folders, ids)
    };
    // What autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) does
    // after a load like the seeding, or a migration that fills a table.
    // On a kept library it repeats work already done (VACUUM skips the
    // unchanged pages; SQLite's ANALYZE re-reads every index), before any
    // timing starts.
    library.repo().analyze().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = library.clone();
    let cfg = config.clone();
    tokio::spawn(async move {
        let _ = server::run(listener, &cfg, served, std::future::pending()).await;
    });
    let channel = server::connect_when_up(addr).await?;
    let media = MediaServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut tree = FolderServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let root = library.root_folder(tenant).await?;

    let mut rng = Rng(7);
    let n = args.samples;
    let mut results = Vec::new();
    let baseline = measure(n, || {
        let id = ids[rng.below(ids.len() as u64) as usize].to_string();
        let mut c = media.clone();
        async move {
            c.get_media(pb::GetMediaRequest {
                media_id: id,
                ..Default::default()
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    results.push(("GetMedia by id (baseline)", baseline));
    let leaf = |r: &mut Rng| folders[r.below(folders.len() as u64) as usize].to_string();
    results.push((
        "folder listing, 50 newest",
        pages(n, &media, false, || pb::ListMediaRequest {
            parent_folder_id: leaf(&mut rng),
            ..Default::default()
        })
        .await?,
    ));
    results.push((
        "recursive listing from the root, 50 newest",
        pages(n, &media, true, || pb::ListMediaRequest {
            parent_folder_id: root.to_string(),
            recursive: true,
            ..Default::default()
        })
        .await?,
    ));
    // Filters over the whole tenant, each picking one value per call.
    type Pick = fn(&mut Rng) -> pb::MediaFilter;
    let filters: [(&str, Pick); 5] = [
        (
            "tag filter (one of the 100 commonest tags), 50 newest",
            |r| pb::MediaFilter {
                tags_any: vec![tag(r.below(100))],
                ..Default::default()
            },
        ),
        ("created_by filter (one of 50 principals), 50 newest", |r| {
            pb::MediaFilter {
                created_by: vec![creator(r.below(CREATORS))],
                ..Default::default()
            }
        }),
        ("created_role filter (one of 5 roles), 50 newest", |r| {
            pb::MediaFilter {
                created_roles: vec![ROLES[r.below(ROLES.len() as u64) as usize].to_string()],
                ..Default::default()
            }
        }),
        (
            "project_id filter (one of the 100 commonest), 50 newest",
            |r| pb::MediaFilter {
                project_ids: vec![project(r.below(100))],
                ..Default::default()
            },
        ),
        ("public filter (one media in ten), 50 newest", |_| {
            pb::MediaFilter {
                public: Some(true),
                ..Default::default()
            }
        }),
    ];
    for (name, pick) in filters {
        results.push((
            name,
            pages(n, &media, true, || pb::ListMediaRequest {
                filter: Some(pick(&mut rng)),
                ..Default::default()
            })
            .await?,
        ));
    }
    results.push((
        "text query (one title word), 50 newest",
        pages(n, &media, false, || pb::ListMediaRequest {
            filter: Some(pb::MediaFilter {
                query: word(rng.below(WORDS)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?,
    ));
    results.push((
        "GetFolderTree of every folder",
        measure(n.min(50), || {
            let mut c = tree.clone();
            async move {
                let nodes = c
                    .get_folder_tree(pb::GetFolderTreeRequest::default())
                    .await?
                    .into_inner()
                    .nodes;
                if nodes.len() < 2 {
                    return Err("the tree came back empty".into());
                }
                Ok(())
            }
        })
        .await?,
    ));
    tree.get_root_folder(pb::GetRootFolderRequest {}).await?;
    // Context: the same tree without gRPC, to tell the database's share.
    let mut inproc = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        library.folder_tree(tenant, None, 0).await?;
        inproc.push(t.elapsed());
    }
    inproc.sort();
    println!(
        "GetFolderTree in process (no gRPC): p50 {:.2} ms",
        ms(inproc[10])
    );
    // And the protobuf work of one tree response, each way.
    let nodes = library.folder_tree(tenant, None, 0).await?;
    let t = Instant::now();
    let response = pb::GetFolderTreeResponse {
        nodes: nodes
            .iter()
            .map(|f| mediastore::service::convert::tree_node_to_pb(f, 0))
            .collect(),
    };
    let converted = t.elapsed();
    let t = Instant::now();
    let bytes = prost::Message::encode_to_vec(&response);
    let encoded = t.elapsed();
    let t = Instant::now();
    let decoded: pb::GetFolderTreeResponse = prost::Message::decode(bytes.as_slice())?;
    println!(
        "tree response: {} nodes, {} bytes; convert {:.2} ms, encode {:.2} ms, decode {:.2} ms",
        decoded.nodes.len(),
        bytes.len(),
        ms(converted),
        ms(encoded),
        ms(t.elapsed())
    );

    let base = results[0].1.p50;
    println!();
    println!("| query | p50 | p99 | p99 / baseline p50 | target |");
    println!("|---|---|---|---|---|");
    for (name, s) in &results {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1} | p99 < 10 ms |",
            ms(s.p50),
            ms(s.p99),
            s.p99.as_secs_f64() / base.as_secs_f64()
        );
    }

    println!();
    let repo = library.repo();
    let folder = folders[0];
    let plans: Vec<(&str, FolderScope, MediaFilter)> = vec![
        (
            "folder listing",
            FolderScope::Folder(folder),
            MediaFilter::default(),
        ),
        (
            "recursive listing from the root",
            FolderScope::All,
            MediaFilter::default(),
        ),
        (
            "tag filter",
            FolderScope::All,
            MediaFilter {
                tags_any: vec![tag(5)],
                ..Default::default()
            },
        ),
        (
            "text query",
            FolderScope::All,
            MediaFilter {
                text: Some(word(5)),
                ..Default::default()
            },
        ),
        (
            "created_by filter",
            FolderScope::All,
            MediaFilter {
                created_by: vec![creator(5)],
                ..Default::default()
            },
        ),
        (
            "created_role filter",
            FolderScope::All,
            MediaFilter {
                created_roles: vec![ROLES[1].to_string()],
                ..Default::default()
            },
        ),
        (
            "project_id filter",
            FolderScope::All,
            MediaFilter {
                project_ids: vec![project(5)],
                ..Default::default()
            },
        ),
        (
            "public filter",
            FolderScope::All,
            MediaFilter {
                public: Some(true),
                ..Default::default()
            },
        ),
    ];
    for (name, scope, filter) in plans {
        let q = MediaQuery {
            filter,
            ..Default::default()
        };
        println!("plan, {name}:");
        for line in repo.explain_list_media(tenant, &scope, &q, 51).await? {
            println!("    {line}");
        }
    }
    let top = library.folder(tenant, root).await?;
    println!("plan, folder tree:");
    for line in repo
        .explain_folder_tree(tenant, &top, MAX_FOLDER_DEPTH, MAX_TREE_NODES + 1)
        .await?
    {
        println!("    {line}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Percentiles of one query.
struct Stats {
    p50: Duration,
    p99: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `call` `n` times one after another (after a few warm-up calls)
/// and returns the latency percentiles.
async fn measure<F, Fut>(n: usize, mut call: F) -> Result<Stats, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    for _ in 0..5 {
        call().await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call().await?;
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok(Stats {
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Times `n` pages of 50 of the requests `make` builds; with `full`, every
/// page must come back full.
async fn pages(
    n: usize,
    client: &MediaServiceClient<Channel>,
    full: bool,
    mut make: impl FnMut() -> pb::ListMediaRequest,
) -> Result<Stats, BoxError> {
    measure(n, || {
        let req = pb::ListMediaRequest {
            page_size: 50,
            ..make()
        };
        let mut c = client.clone();
        async move { page(&mut c, req, full).await }
    })
    .await
}

/// One page; a page expected to be full must be.
async fn page(
    c: &mut MediaServiceClient<Channel>,
    req: pb::ListMediaRequest,
    full: bool,
) -> Result<(), BoxError> {
    let want = req.page_size as usize;
    let got = c.list_media(req).await?.into_inner().media.len();
    if full && got != want {
        return Err(format!("a page came back with {got} media, not {want}").into());
    }
    Ok(())
}

/// 100 top-level folders, the rest spread below them; returns every
/// folder but the root.
async fn seed_folders(library: &Library, count: usize) -> Result<Vec<FolderId>, BoxError> {
    let by = Principal::unauthenticated();
    let root = library.root_folder(by.tenant).await?;
    let top = count.clamp(1, 100);
    let mut out = Vec::with_capacity(count);
    let mut tx = library.repo().begin().await?;
    for i in 0..top {
        let name = FolderName::parse("name", &format!("dir{i:03}"))?;
        out.push(tx.create_folder(&by, root, &name, false).await?.id);
    }
    for i in top..count {
        let parent = out[i % top];
        let name = FolderName::parse("name", &format!("sub{i:05}"))?;
        out.push(tx.create_folder(&by, parent, &name, false).await?.id);
    }
    tx.commit().await?;
    Ok(out)
}

async fn seed_media(
    library: &Library,
    folders: &[FolderId],
    count: usize,
) -> Result<Vec<MediaId>, BoxError> {
    let tenant = TenantId::DEFAULT;
    let mut rng = Rng(42);
    let start = now_micros() - count as i64 * 1000;
    let mut ids = Vec::with_capacity(count);
    let mut made = 0;
    while made < count {
        let n = SEED_BATCH.min(count - made);
        let mut rows = Vec::with_capacity(n);
        for i in made..made + n {
            let created = start + i as i64 * 1000;
            let (year, month) = year_month(created);
            let mut tags: Vec<String> = (0..3).map(|_| tag(rng.skewed(TAGS))).collect();
            tags.sort();
            tags.dedup();
            let title = (0..3)
                .map(|_| word(rng.below(WORDS)))
                .collect::<Vec<_>>()
                .join(" ");
            let size = 1000 + rng.below(5_000_000);
            let by = creator(rng.below(CREATORS));
            let role = ROLES[rng.below(ROLES.len() as u64) as usize];
            // One in ten public.
            let public = rng.below(10) == 0;
            let project_id = project(rng.skewed(PROJECTS));
            let id = MediaId::new();
            ids.push(id);
            let blob = ContentHash::from(blake3::hash(&(i as u64).to_le_bytes()));
            rows.push(Media {
                id,
                tenant,
                folder: folders[rng.below(folders.len() as u64) as usize],
                blob,
                content: blob,
                media_type: MediaType::Image,
                filename: format!("img{i}.jpg"),
                original_filename: format!("img{i}.jpg"),
                title,
                mime_type: "image/jpeg".into(),
                size,
                md5: None,
                analysis: Analysis {
                    taken_year: Some(year),
                    taken_month: Some(month),
                    ..Analysis::default()
                },
                tags,
                author: None,
                copyright: None,
                metadata: None,
                public,
                ready: true,
                created_at: created,
                updated_at: created,
                created_by: by.clone(),
                updated_by: by,
                created_role: role.to_string(),
                project_id,
                slot: None,
                code: None,
            });
        }
        let mut claims: Vec<BlobClaim<'_>> = rows
            .iter()
            .map(|m| BlobClaim {
                hash: m.blob,
                content: m.content,
                size: m.size,
                md5: None,
                count: 1,
            })
            .collect();
        claims.sort_by_key(|c| c.hash);
        let mut tx = library.repo().begin().await?;
        tx.claim_blobs(&claims).await?;
        tx.insert_media(&rows.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        made += n;
    }
    Ok(ids)
}

//! Size limits applied to everything that comes from outside.
//!
//! They follow Kubo where Kubo has one, so that what one node accepts the other accepts too.

/// Largest block we store, serve or accept from a peer. Bitswap messages are capped at 4 MiB and
/// Kubo refuses to exchange blocks over 2 MiB.
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// Largest block `block put` accepts, as Kubo's default (without `--allow-big-block`).
pub const MAX_PUT_BLOCK_SIZE: usize = 1024 * 1024;

/// Kubo's default chunk size for `add`.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;

/// Largest chunk size `add --chunker size-N` accepts (Kubo's `ChunkSizeLimit`).
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// Most links per node in a balanced UnixFS file DAG (Kubo's `DefaultLinksPerBlock`).
pub const DEFAULT_MAX_LINKS: usize = 174;

/// Largest digest of an identity-hashed CID we accept: the capacity of our multihash type. Kubo
/// inlines up to 32 bytes by default.
pub const MAX_IDENTITY_DIGEST: usize = 64;

/// Longest CID string we try to parse; anything longer is rejected before decoding.
pub const MAX_CID_STRING_LEN: usize = 512;

/// Longest content path (`/ipfs/<cid>/a/b/...`) and most segments in it.
pub const MAX_PATH_LEN: usize = 4096;
/// See [`MAX_PATH_LEN`].
pub const MAX_PATH_SEGMENTS: usize = 256;

/// Deepest DAG that export walks follow (path resolution, file reads, CAR and `get` walks).
/// Kubo's balanced file DAGs stay under 6 levels even for terabytes and directory trees rarely
/// nest beyond a few dozen; what a walk holds grows with depth, so a hostile DAG is cut off here.
pub const MAX_DAG_DEPTH: usize = 256;

/// Largest CARv1 header (the dag-cbor roots list) a CAR reader accepts: thousands of roots.
pub const MAX_CAR_HEADER_SIZE: usize = 64 * 1024;

/// Longest binary CID accepted in a CAR frame: version, codec and a 64-byte digest with their
/// varints fit well within it.
pub const MAX_CID_BYTES: usize = 128;

/// Largest announcement on a mirror topic. The guide's announcements are a CID, a type and a
/// little metadata: a few hundred bytes.
pub const MAX_ANNOUNCEMENT_SIZE: usize = 16 * 1024;

/// Longest announcement type (`contract`, `proposal`, `manifest`, ...): a label, also in metrics.
pub const MAX_ANNOUNCEMENT_TYPE_LEN: usize = 64;

/// Largest announcement metadata, as compact JSON.
pub const MAX_ANNOUNCEMENT_METADATA_SIZE: usize = 8 * 1024;

/// Largest manifest block. A manifest of the guide's 2,000 entries with small metadata is a few
/// hundred KiB; it must fit in one block that Bitswap and the CAR transfer carry.
pub const MAX_MANIFEST_SIZE: usize = MAX_BLOCK_SIZE;

/// Most entries a manifest may list when the caller sets no lower bound (the guide's
/// `mirrorMaxFiles` is 2,000).
pub const MAX_MANIFEST_ENTRIES: usize = 10_000;

/// Largest body of a stego approval callback. The platform sends two CIDs, a verdict and the
/// metadata it wants announced (itself held to [`MAX_ANNOUNCEMENT_METADATA_SIZE`]).
pub const MAX_STEGO_CALLBACK_SIZE: usize = 64 * 1024;

//! The one checkpoint container of every trainer: a safetensors file whose tensors are the
//! trainer's weights (and replay buffers, optimiser moments) and whose metadata holds one JSON
//! header: the format version, the trainer kind, the rein version that wrote it, and the
//! trainer's typed state (a `#[derive(Serialize, Deserialize)]` struct per trainer).
//!
//! One metadata key, not several: safetensors keeps metadata in a hash map, whose order would
//! vary between runs and break byte-identical checkpoints. Files are written atomically
//! (temporary file, then rename), so weights and state never disagree after a crash.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The version of the container's layout. Files of a newer version are refused; files of
/// rein before the container (a bare `rein_state` key) are refused with a message saying so.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key of the header.
const HEADER_KEY: &str = "rein_checkpoint";

/// The metadata key of checkpoints written before [`FORMAT_VERSION`] 1.
const LEGACY_KEY: &str = "rein_state";

/// What went wrong with a checkpoint; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is damaged, not a rein checkpoint, of another version or of another kind.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was found and what was expected.
        message: String,
    },
}

/// The JSON header in the metadata. `checksum` (CRC-32 of the state's JSON text and of every
/// tensor, [`checksum`]) makes flipped bytes inside a well-formed file an error; files
/// written before it have none and are read unchecked.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<S> {
    format: u32,
    kind: String,
    rein_version: String,
    state: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    /// Ranks of the MPI run that wrote it (absent: one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    world_size: Option<usize>,
    /// The states of ranks 1.. of an MPI run (`state` is rank 0's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rank_states: Vec<S>,
}

/// What a rank sends rank 0 at a checkpoint: its state's length (8 bytes, little-endian), its
/// state, its rank-local tensors as a safetensors blob.
fn rank_message<V: safetensors::View>(
    state_text: &str,
    local: Vec<(String, V)>,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let blob = safetensors::serialize(local, None)?;
    let mut message = (state_text.len() as u64).to_le_bytes().to_vec();
    message.extend_from_slice(state_text.as_bytes());
    message.extend_from_slice(&blob);
    Ok(message)
}

/// Why a checkpoint of `written_by` ranks cannot continue in a run of `ranks`.
fn mismatched_ranks(written_by: usize, ranks: usize) -> String {
    format!(
        "written by a run of {written_by} MPI rank(s); this run has {ranks}: resume it with the \
         same number (mpirun -np {written_by})"
    )
}

/// The name under which rank `rank` (>= 1) of an MPI run stores its rank-local tensor `name`
/// (rank 0 stores it under `name`, as a single process does).
fn rank_tensor_name(rank: usize, name: &str) -> String {
    format!("rank{rank}/{name}")
}

/// The text the checksum covers: the state, then each further rank's state.
fn states_text(state: &str, rank_states: &[&str]) -> String {
    let mut text = state.to_string();
    for r in rank_states {
        text.push('\n');
        text.push_str(r);
    }
    text
}

/// CRC-32 (crc32fast: the checksum gzip and PNG use) of the state's exact JSON text and of
/// each tensor's name, dtype, shape and bytes in name order, as `crc32:xxxxxxxx`. Any flipped
/// bit in either changes it; the tensors' layout in the file does not.
fn checksum<'a>(
    state: &str,
    tensors: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>,
) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(state.as_bytes());
    let mut tensors: Vec<_> = tensors.collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, dtype, shape, data) in tensors {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(dtype.as_bytes());
        for d in shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(data);
    }
    format!("crc32:{:08x}", h.finalize())
}

/// A tensor's shape and its f32 values.
pub type ShapedF32 = (Vec<usize>, Vec<f32>);

/// The rein header in a safetensors file's metadata, checked: present (a bare legacy
/// `rein_state` is named as such), well-formed, of a format this rein reads.
fn check_header(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<Header<serde_json::Value>, CheckpointError> {
    let invalid = |message: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let Some(text) = meta.get(HEADER_KEY) else {
        return Err(invalid(if meta.contains_key(LEGACY_KEY) {
            format!(
                "written by rein before checkpoint format {FORMAT_VERSION}; this version cannot \
                 resume it (start a new run)"
            )
        } else {
            "no rein checkpoint header (a plain safetensors file, not a rein checkpoint)".into()
        }));
    };
    let header: Header<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("damaged checkpoint header: {e}")))?;
    if header.format > FORMAT_VERSION {
        return Err(invalid(format!(
            "checkpoint format {} (written by rein {}), newer than this rein's format \
             {FORMAT_VERSION}: upgrade rein to resume it",
            header.format, header.rein_version
        )));
    }
    Ok(header)
}

/// Says how a safetensors file is cut short, if it is: shorter than its 8-byte header length,
/// than the header it declares, or than the tensor data its header describes.
fn truncation(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len();
    let truncated = |what: String| {
        Err(format!(
            "the file is truncated ({n} bytes, {what}); it was cut short (a copy or a disk that \
             ran out of space) and cannot be resumed"
        ))
    };
    let Some(len) = bytes.get(..8) else {
        return truncated("less than the 8-byte header length".into());
    };
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let header_end = 8u64.saturating_add(len);
    if header_end > n as u64 {
        // A length no real header has is damage, not truncation: let the parser say so.
        if len > 100 << 20 {
            return Ok(());
        }
        return truncated(format!("its header alone declares {header_end}"));
    }
    let Ok(header) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(
        &bytes[8..header_end as usize],
    ) else {
        return Ok(());
    };
    let data_end = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if header_end + data_end > n as u64 {
        return truncated(format!("its tensors need {}", header_end + data_end));
    }
    Ok(())
}

/// A checkpoint read from disk: its header and the bytes its tensors live in.
pub struct Checkpoint {
    path: PathBuf,
    kind: String,
    rein_version: String,
    state: serde_json::Value,
    bytes: Vec<u8>,
    /// The MPI rank this process reads as (its state and rank-local tensors).
    rank: usize,
}

impl Checkpoint {
    /// Writes `tensors` and `state` of a trainer of `kind` to `path`, atomically.
    ///
    /// Under MPI (more than one rank) every rank calls it: each rank's `state` and its
    /// rank-local tensors are gathered to rank 0, which writes one file holding them all
    /// (see [`Checkpoint::write_ranked`]); here all tensors are shared (equal on every rank).
    pub fn write<S: Serialize, V: safetensors::View>(
        path: &Path,
        kind: &str,
        state: &S,
        tensors: Vec<(String, V)>,
    ) -> Result<(), CheckpointError> {
        Self::write_ranked(path, kind, state, tensors, Vec::new())
    }

    /// [`Checkpoint::write`] with `local` tensors that differ between MPI ranks (a rank's own
    /// replay buffer): rank 0 stores its own under their names, rank `r` under `rank{r}/NAME`,
    /// and [`Checkpoint::f32_tensors`] gives each rank back its own under the plain names.
    /// `shared` tensors (weights, optimiser moments: equal on every rank) are stored once.
    /// Every rank's `state` is kept (rank 0's as the state, the others' in the header), so
    /// `--resume` under the same number of ranks continues exactly; with one process it is
    /// `write` of all the tensors.
    pub fn write_ranked<S: Serialize, V: safetensors::View>(
        path: &Path,
        kind: &str,
        state: &S,
        shared: Vec<(String, V)>,
        local: Vec<(String, V)>,
    ) -> Result<(), CheckpointError> {
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let state_text = serde_json::to_string(state)
            .map_err(|e| invalid(format!("serialising the trainer state: {e}")))?;
        let world = rein_core::collective::world();
        if world.size() == 1 {
            let mut tensors = shared;
            tensors.extend(local);
            return Self::write_file(path, kind, state_text, Vec::new(), tensors);
        }
        let message = rank_message(&state_text, local)
            .map_err(|e| invalid(format!("serialising tensors: {e}")))?;
        let gathered = world.gather_bytes(&message);
        if world.rank() != 0 {
            return Ok(());
        }
        let mut rank_states = Vec::new();
        let mut blobs = Vec::new();
        for (r, m) in gathered.iter().enumerate() {
            let bad = || invalid(format!("rank {r} sent a malformed checkpoint part"));
            let len =
                u64::from_le_bytes(m.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
            let end = 8 + len as usize;
            let text = std::str::from_utf8(m.get(8..end).ok_or_else(bad)?).map_err(|_| bad())?;
            if r > 0 {
                rank_states.push(text.to_string());
            }
            blobs.push((r, &m[end..]));
        }
        let mut owned: Vec<(String, OwnedView)> = Vec::new();
        for (r, blob) in blobs {
            let st = safetensors::SafeTensors::deserialize(blob)
                .map_err(|e| invalid(format!("rank {r}'s tensors: {e}")))?;
            for (name, view) in st.tensors() {
                let name = if r == 0 {
                    name
                } else {
                    rank_tensor_name(r, &name)
                };
                owned.push((
                    name,
                    OwnedView {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        data: view.data().to_vec(),
                    },
                ));
            }
        }
        let mut tensors: Vec<(String, AnyView<V>)> = shared
            .into_iter()
            .map(|(n, v)| (n, AnyView::Given(v)))
            .collect();
        tensors.extend(owned.into_iter().map(|(n, v)| (n, AnyView::Owned(v))));
        Self::write_file(path, kind, state_text, rank_states, tensors)
    }

    /// Writes the file of [`Checkpoint::write_ranked`] (rank 0 only).
    fn write_file<V: safetensors::View>(
        path: &Path,
        kind: &str,
        state_text: String,
        rank_states: Vec<String>,
        tensors: Vec<(String, V)>,
    ) -> Result<(), CheckpointError> {
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let datas: Vec<_> = tensors.iter().map(|(_, v)| v.data()).collect();
        let ranks: Vec<&str> = rank_states.iter().map(String::as_str).collect();
        let sum = checksum(
            &states_text(&state_text, &ranks),
            tensors
                .iter()
                .zip(&datas)
                .map(|((n, v), d)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), &d[..])),
        );
        drop(datas);
        let raw = |text: String| {
            serde_json::value::RawValue::from_string(text)
                .map_err(|e| invalid(format!("serialising the trainer state: {e}")))
        };
        let world_size = (!rank_states.is_empty()).then_some(rank_states.len() + 1);
        let header = Header {
            format: FORMAT_VERSION,
            kind: kind.to_string(),
            rein_version: env!("CARGO_PKG_VERSION").to_string(),
            state: raw(state_text)?,
            checksum: Some(sum),
            world_size,
            rank_states: rank_states.into_iter().map(raw).collect::<Result<_, _>>()?,
        };
        let json = serde_json::to_string(&header)
            .map_err(|e| invalid(format!("serialising the trainer state: {e}")))?;
        let meta = HashMap::from([(HEADER_KEY.to_string(), json)]);
        let bytes = safetensors::serialize(tensors, Some(meta))
            .map_err(|e| invalid(format!("serialising tensors: {e}")))?;
        rein_core::metrics::write_atomic(path, &bytes).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and checks a checkpoint: a safetensors file with a header of a known format.
    ///
    /// Under MPI, rank 0 reads the file and sends it to every rank (only rank 0 needs to see
    /// the run directory); each rank gets its own state and rank-local tensors, and a file
    /// written by another number of ranks is refused naming both numbers.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let bytes =
            rein_core::collective::read_on_root(|| std::fs::read(path).map_err(|e| e.to_string()))
                .map_err(|message| CheckpointError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(message),
                })?;
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // Only a file that does not parse is measured for truncation, to say so by name.
        let cut_short = |other: String| match truncation(&bytes) {
            Err(truncated) => invalid(truncated),
            Ok(()) => invalid(other),
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            cut_short(format!(
                "not a safetensors file ({e}); the file is damaged or not a checkpoint"
            ))
        })?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let header = check_header(path, &meta)?;
        // The tensors must parse too, so that a truncated file fails here, by name.
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| cut_short(format!("damaged tensor data: {e}")))?;
        let raw: Header<Box<serde_json::value::RawValue>> = serde_json::from_str(&meta[HEADER_KEY])
            .map_err(|e| invalid(format!("damaged checkpoint header: {e}")))?;
        if let Some(stored) = &raw.checksum {
            let views = st.tensors();
            let ranks: Vec<&str> = raw.rank_states.iter().map(|r| r.get()).collect();
            let found = checksum(
                &states_text(raw.state.get(), &ranks),
                views
                    .iter()
                    .map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())),
            );
            if &found != stored {
                return Err(invalid(format!(
                    "the file is damaged: its checksum is {found}, it was written as {stored} \
                     (flipped bytes; restore the file or start again from an older copy)"
                )));
            }
        }
        drop(st);
        let world = rein_core::collective::world();
        let written_by = header.world_size.unwrap_or(1);
        // One process (evaluation, inspection) reads rank 0's part of any run.
        if world.size() > 1 && written_by != world.size() {
            return Err(invalid(mismatched_ranks(written_by, world.size())));
        }
        let rank = world.rank();
        let mut rank_states = header.rank_states;
        let state = if rank == 0 {
            header.state
        } else {
            let missing = || invalid(format!("no state of rank {rank} (the file is damaged)"));
            std::mem::take(rank_states.get_mut(rank - 1).ok_or_else(missing)?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            kind: header.kind,
            rein_version: header.rein_version,
            state,
            bytes,
            rank,
        })
    }

    /// The trainer kind of the checkpoint at `path`, from its header alone (the tensors, a
    /// replay buffer or a language model, are not read): for loaders that dispatch on the kind
    /// before reading the file once with [`Checkpoint::read_kind`].
    pub fn peek_kind(path: &Path) -> Result<String, CheckpointError> {
        Ok(Self::peek(path)?.0)
    }

    /// Refuses to resume the checkpoint at `path` in a run of another number of MPI ranks
    /// than wrote it (each rank continues its own environments), naming both numbers.
    /// Reading it for evaluation needs no such match: one process reads rank 0's part.
    pub fn check_resume_ranks(path: &Path) -> Result<(), CheckpointError> {
        let written_by = Self::peek(path)?.1;
        let ranks = rein_core::collective::world().size();
        if written_by != ranks {
            return Err(CheckpointError::Invalid {
                path: path.to_path_buf(),
                message: mismatched_ranks(written_by, ranks),
            });
        }
        Ok(())
    }

    /// The kind and the number of ranks of the checkpoint at `path`, from its header. Under
    /// MPI rank 0 reads it and every rank gets its answer (as in `read`).
    fn peek(path: &Path) -> Result<(String, usize), CheckpointError> {
        let mut error = None;
        let found = rein_core::collective::read_on_root(|| match Self::peek_here(path) {
            Ok((kind, ranks)) => Ok(format!("{ranks}\t{kind}").into_bytes()),
            Err(e) => {
                let message = e.to_string();
                error = Some(e);
                Err(message)
            }
        });
        match (found, error) {
            (Ok(text), _) => {
                let text = String::from_utf8_lossy(&text).into_owned();
                let (ranks, kind) = text.split_once('\t').unwrap_or(("1", &text));
                Ok((kind.to_string(), ranks.parse().unwrap_or(1)))
            }
            (Err(_), Some(e)) => Err(e),
            (Err(message), None) => Err(CheckpointError::Invalid {
                path: path.to_path_buf(),
                message: format!("rank 0 could not read it: {message}"),
            }),
        }
    }

    /// [`Checkpoint::peek`] of this process's filesystem.
    fn peek_here(path: &Path) -> Result<(String, usize), CheckpointError> {
        use std::io::Read;
        let invalid = |message: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let not_safetensors = |e: String| {
            invalid(format!(
                "not a safetensors file ({e}); the file is damaged or not a checkpoint"
            ))
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|_| {
            invalid("the file is truncated (less than the 8-byte header length)".into())
        })?;
        let len = u64::from_le_bytes(len);
        let file_len = file.metadata().map_err(io)?.len();
        if len > file_len.saturating_sub(8) {
            return Err(if len <= 100 << 20 {
                invalid(format!(
                    "the file is truncated ({file_len} bytes, its header alone declares {}); \
                     it was cut short and cannot be resumed",
                    len + 8
                ))
            } else {
                not_safetensors(format!("header of {len} bytes in a file of {file_len}"))
            });
        }
        let mut text = vec![0u8; len as usize];
        file.read_exact(&mut text)
            .map_err(|e| not_safetensors(e.to_string()))?;
        #[derive(Deserialize)]
        struct SafetensorsHeader {
            #[serde(rename = "__metadata__", default)]
            metadata: HashMap<String, String>,
        }
        let h: SafetensorsHeader =
            serde_json::from_slice(&text).map_err(|e| not_safetensors(e.to_string()))?;
        let header = check_header(path, &h.metadata)?;
        Ok((header.kind, header.world_size.unwrap_or(1)))
    }

    /// Reads a checkpoint that must be of one of `kinds`.
    pub fn read_kind(path: &Path, kinds: &[&str]) -> Result<Self, CheckpointError> {
        let c = Self::read(path)?;
        if !kinds.contains(&c.kind.as_str()) {
            return Err(c.invalid(format!(
                "a checkpoint of a {} trainer, expected {}",
                c.kind,
                kinds.join(" or ")
            )));
        }
        Ok(c)
    }

    /// The trainer kind that wrote it (`ppo`, `sac`, `lm-grpo`, ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The rein version that wrote it.
    pub fn rein_version(&self) -> &str {
        &self.rein_version
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The trainer's state, typed; an error names the file and the field serde missed.
    pub fn state<S: DeserializeOwned>(&self) -> Result<S, CheckpointError> {
        S::deserialize(&self.state).map_err(|e| self.invalid(format!("trainer state: {e}")))
    }

    /// The raw safetensors bytes (for loaders that build their own tensors, such as candle's).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Every tensor as f32 values with its shape; other dtypes are an error naming the tensor.
    pub fn f32_tensors(&self) -> Result<HashMap<String, ShapedF32>, CheckpointError> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes)
            .map_err(|e| self.invalid(format!("damaged tensor data: {e}")))?;
        let mut out = HashMap::new();
        let own_prefix = format!("rank{}/", self.rank);
        for (name, view) in st.tensors() {
            // Rank-local tensors of MPI runs: this rank's under their plain names.
            let name = if let Some(plain) = name.strip_prefix(&own_prefix) {
                plain.to_string()
            } else if is_rank_tensor(&name) || (self.rank > 0 && st_has(&st, &own_prefix, &name)) {
                continue;
            } else {
                name
            };
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(self.invalid(format!(
                    "tensor {name} has dtype {:?}, expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            out.insert(name, (view.shape().to_vec(), data));
        }
        Ok(out)
    }

    /// An error about this checkpoint (names its file).
    pub fn invalid(&self, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Invalid {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// An f32 tensor to write: its shape and its values as little-endian bytes.
pub struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl F32View {
    /// The tensor `data` with `shape` (row-major).
    pub fn new(shape: Vec<usize>, data: &[f32]) -> Self {
        Self {
            shape,
            bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

impl safetensors::View for F32View {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// True for `rankR/NAME`, a rank-local tensor of rank `R >= 1`.
fn is_rank_tensor(name: &str) -> bool {
    name.strip_prefix("rank").is_some_and(|rest| {
        rest.split_once('/')
            .is_some_and(|(r, _)| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// True when rank-local tensor `name` of rank 0 has a twin `own_prefix + name` (so the
/// reading rank takes its own instead).
fn st_has(st: &safetensors::SafeTensors<'_>, own_prefix: &str, name: &str) -> bool {
    st.tensor(&format!("{own_prefix}{name}")).is_ok()
}

/// A tensor received from another rank, owned.
struct OwnedView {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// A tensor rank 0 writes: one of its own (`Given`) or one gathered from a rank (`Owned`).
enum AnyView<V> {
    Given(V),
    Owned(OwnedView),
}

impl<V: safetensors::View> safetensors::View for AnyView<V> {
    fn dtype(&self) -> safetensors::Dtype {
        match self {
            Self::Given(v) => v.dtype(),
            Self::Owned(v) => v.dtype,
        }
    }
    fn shape(&self) -> &[usize] {
        match self {
            Self::Given(v) => v.shape(),
            Self::Owned(v) => &v.shape,
        }
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Self::Given(v) => v.data(),
            Self::Owned(v) => std::borrow::Cow::Borrowed(&v.data),
        }
    }
    fn data_len(&self) -> usize {
        match self {
            Self::Given(v) => v.data_len(),
            Self::Owned(v) => v.data.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        update: u64,
        rate: f64,
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("rein-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A world of `size` ranks seen from `rank`, without MPI: rank 0's gather receives
    /// `gathered` from the others, a broadcast delivers `broadcast` to the other ranks.
    struct FakeWorld {
        rank: usize,
        size: usize,
        gathered: Vec<Vec<u8>>,
        broadcast: Vec<u8>,
    }

    impl rein_core::collective::Communicator for FakeWorld {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn sum_f64(&self, _: &mut [f64]) {}
        fn sum_f32(&self, _: &mut [f32]) {}
        fn min_max_u64(&self, v: u64) -> (u64, u64) {
            (v, v)
        }
        fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
            let mut all = vec![bytes.to_vec()];
            all.extend(self.gathered.iter().cloned());
            all
        }
        fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
            if self.rank != 0 {
                bytes.clone_from(&self.broadcast);
            }
        }
        fn abort(&self, _: i32) -> ! {
            unreachable!("no abort in these tests")
        }
    }

    fn with_world<T>(world: FakeWorld, f: impl FnOnce() -> T) -> T {
        rein_core::collective::install_world(Some(std::rc::Rc::new(world)));
        let out = f();
        rein_core::collective::install_world(None);
        out
    }

    /// Rank 0 of two writes both ranks' states and rank-local tensors into one file; each rank
    /// reads its own back, one process reads rank 0's, three ranks are refused.
    #[test]
    fn a_checkpoint_of_two_ranks_holds_both_and_gives_each_its_own() {
        let p = dir().join("ranks.safetensors");
        let state = |update| State { update, rate: 0.5 };
        let rank1 = rank_message(
            &serde_json::to_string(&state(1)).unwrap(),
            vec![("replay.x".to_string(), F32View::new(vec![1], &[2.0]))],
        )
        .unwrap();
        with_world(
            FakeWorld {
                rank: 0,
                size: 2,
                gathered: vec![rank1],
                broadcast: Vec::new(),
            },
            || {
                Checkpoint::write_ranked(
                    &p,
                    "test",
                    &state(0),
                    vec![("w".to_string(), F32View::new(vec![1], &[7.0]))],
                    vec![("replay.x".to_string(), F32View::new(vec![1], &[1.0]))],
                )
                .unwrap()
            },
        );
        let bytes = std::fs::read(&p).unwrap();
        let read_as = |rank: usize, size: usize| {
            let mut broadcast = bytes.clone();
            broadcast.push(1); // read_on_root's "read succeeded" mark
            with_world(
                FakeWorld {
                    rank,
                    size,
                    gathered: Vec::new(),
                    broadcast,
                },
                || Checkpoint::read(&p),
            )
        };
        for (rank, update, replay) in [(0, 0, 1.0), (1, 1, 2.0)] {
            let c = read_as(rank, 2).unwrap();
            assert_eq!(c.state::<State>().unwrap(), state(update));
            let t = c.f32_tensors().unwrap();
            assert_eq!(t.len(), 2, "{:?}", t.keys().collect::<Vec<_>>());
            assert_eq!(t["w"].1, vec![7.0]);
            assert_eq!(t["replay.x"].1, vec![replay]);
        }
        let one = Checkpoint::read(&p).unwrap();
        assert_eq!(one.state::<State>().unwrap(), state(0));
        assert_eq!(one.f32_tensors().unwrap()["replay.x"].1, vec![1.0]);
        let e = read_as(0, 3).err().unwrap().to_string();
        assert!(
            e.contains("written by a run of 2 MPI rank(s); this run has 3"),
            "{e}"
        );
        let e = Checkpoint::check_resume_ranks(&p).unwrap_err().to_string();
        assert!(e.contains("this run has 1"), "{e}");
    }

    #[test]
    fn state_and_tensors_round_trip_and_bad_files_are_named() {
        let p = dir().join("c.safetensors");
        let w = [1.5f32, -2.0, 0.25];
        let state = State {
            update: 7,
            rate: 0.1 + 0.2,
        };
        Checkpoint::write(
            &p,
            "ppo",
            &state,
            vec![("w".into(), F32View::new(vec![3], &w))],
        )
        .unwrap();
        let c = Checkpoint::read_kind(&p, &["ppo"]).unwrap();
        assert_eq!(Checkpoint::peek_kind(&p).unwrap(), "ppo");
        assert_eq!(c.state::<State>().unwrap(), state);
        assert_eq!(c.f32_tensors().unwrap()["w"], (vec![3], w.to_vec()));
        // Same content, same bytes.
        let first = std::fs::read(&p).unwrap();
        Checkpoint::write(
            &p,
            "ppo",
            &state,
            vec![("w".into(), F32View::new(vec![3], &w))],
        )
        .unwrap();
        assert_eq!(first, std::fs::read(&p).unwrap());

        let e = Checkpoint::read_kind(&p, &["sac"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("c.safetensors") && e.contains("ppo trainer, expected sac"),
            "{e}"
        );
        let e = c.state::<Vec<u8>>().err().unwrap().to_string();
        assert!(e.contains("trainer state"), "{e}");

        std::fs::write(&p, &first[..first.len() - 3]).unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(e.contains("the file is truncated"), "{e}");
        for cut in [first.len() / 2, 20, 5] {
            std::fs::write(&p, &first[..cut]).unwrap();
            let e = Checkpoint::read(&p).err().unwrap().to_string();
            assert!(e.contains("the file is truncated"), "{cut}: {e}");
            let e = Checkpoint::peek_kind(&p).err().unwrap().to_string();
            assert!(e.contains("truncated"), "{cut}: {e}");
        }
        // A flipped bit in a tensor or in the state, the file still well-formed.
        let mut flipped = first.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        std::fs::write(&p, &flipped).unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(
            e.contains("c.safetensors: the file is damaged: its checksum"),
            "{e}"
        );
        let needle = b"\\\"update\\\":7";
        let at = first
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("state in the header")
            + needle.len()
            - 1;
        let mut flipped = first.clone();
        flipped[at] = b'8';
        std::fs::write(&p, &flipped).unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(e.contains("the file is damaged: its checksum"), "{e}");
        std::fs::write(&p, b"not a checkpoint").unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
        let e = Checkpoint::peek_kind(&p).err().unwrap().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");

        // A checkpoint of the format before the container, and one from the future.
        let legacy = HashMap::from([(LEGACY_KEY.to_string(), "{}".to_string())]);
        let bytes = safetensors::serialize(Vec::<(String, F32View)>::new(), Some(legacy)).unwrap();
        std::fs::write(&p, bytes).unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(e.contains("before checkpoint format 1"), "{e}");
        let e = Checkpoint::peek_kind(&p).err().unwrap().to_string();
        assert!(e.contains("before checkpoint format 1"), "{e}");
        let future = HashMap::from([(
            HEADER_KEY.to_string(),
            r#"{"format":99,"kind":"ppo","rein_version":"9.0.0","state":{}}"#.to_string(),
        )]);
        let bytes = safetensors::serialize(Vec::<(String, F32View)>::new(), Some(future)).unwrap();
        std::fs::write(&p, bytes).unwrap();
        let e = Checkpoint::read(&p).err().unwrap().to_string();
        assert!(e.contains("format 99") && e.contains("upgrade rein"), "{e}");
    }
}

//! Receiving a dataset: the bytes stream to `<data_dir>/tmp/upload.<id>.part`, are
//! scanned on the way (`drover_analysis::scan`), and the file is renamed to
//! `<data_dir>/datasets/<id>.csv` and recorded only when all of it was good. Any
//! failure removes the part file: a refused or cut upload leaves no file and no row.
//! The network reads run on the request's task; the scan and the writes run on a
//! blocking thread fed through a short channel, so the two overlap.

use std::io::Write;
use std::path::{Path, PathBuf};

use drover_analysis::scan::{Scan, ScanError, Scanner};
use drover_analysis::store;
use drover_entities::dataset;
use sea_orm::DatabaseConnection;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ApiError;

const BUF: usize = 256 * 1024;

/// Limits of one upload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub chunk_bytes: u64,
}

/// A part file that removes itself unless kept.
struct PartFile(Option<PathBuf>);

impl Drop for PartFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn scan_error(e: ScanError) -> ApiError {
    match e {
        ScanError::TooLarge(max) => ApiError::too_large(format!(
            "the dataset is larger than the limit of {max} bytes (DROVER_DATASET_MAX_BYTES)"
        )),
        // The request had the documented shape; its CSV could not be used.
        other => ApiError::unprocessable("file", other.to_string()),
    }
}

/// The display name of an upload: trimmed, at most 255 characters, no control
/// characters. Only ever stored and shown; the file is named after the id.
pub fn clean_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ApiError::validation("name", "must be 1 to 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Buffers in flight between the network and the writer: they bound the upload's
/// memory (`DEPTH` × [`BUF`]) whatever the file's size.
const DEPTH: usize = 32;

/// The writer syncs the part file every this many bytes. The kernel then writes the
/// file back while the upload goes on (the reads fill the channel meanwhile), and the
/// sync at the end, which the dataset's durability needs, finds little left to do: a
/// single sync at the end was over a third of an upload's time.
const SYNC_EVERY: usize = DEPTH * BUF;

/// A buffer of the body and how much of it is filled. A length of 0 is the end of
/// the body; the channel closing without it means the upload was cut.
type Piece = (Vec<u8>, usize);

/// Why the writer stopped.
enum WriteError {
    Scan(ScanError),
    Io(std::io::Error),
    /// The body ended early: the reader has its error.
    Cut,
}

/// The blocking half of an upload: scans each piece (sha256, records, profile) and
/// appends it to the part file, on a thread of its own, so that this work overlaps
/// the network reads instead of following each one (it is most of the upload's CPU,
/// with the file writes and the final sync).
fn write_pieces(
    mut file: std::fs::File,
    limits: Limits,
    pieces: &mut tokio::sync::mpsc::Receiver<Piece>,
    spent: &std::sync::mpsc::SyncSender<Vec<u8>>,
) -> Result<Scan, WriteError> {
    let mut scanner = Scanner::new(limits.max_bytes, limits.chunk_bytes);
    let mut unsynced = 0;
    loop {
        let Some((buf, n)) = pieces.blocking_recv() else {
            return Err(WriteError::Cut);
        };
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]).map_err(WriteError::Scan)?;
        file.write_all(&buf[..n]).map_err(WriteError::Io)?;
        unsynced += n;
        if unsynced >= SYNC_EVERY {
            file.sync_data().map_err(WriteError::Io)?;
            unsynced = 0;
        }
        // The reader allocates a new buffer when none comes back.
        let _ = spent.try_send(buf);
    }
    let scan = scanner.finish().map_err(WriteError::Scan)?;
    file.sync_all().map_err(WriteError::Io)?;
    Ok(scan)
}

/// Streams `body` into a new dataset named `name`.
pub async fn receive(
    db: &DatabaseConnection,
    data_dir: &Path,
    limits: Limits,
    name: &str,
    mut body: impl AsyncRead + Unpin,
) -> Result<dataset::Model, ApiError> {
    let id = ulid::Ulid::new().to_string();
    let tmp_dir = data_dir.join("tmp");
    let final_dir = data_dir.join("datasets");
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::create_dir_all(&final_dir)
        .await
        .map_err(ApiError::internal)?;
    let part_path = tmp_dir.join(format!("upload.{id}.part"));
    let mut part = PartFile(Some(part_path.clone()));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(DEPTH);
    let (spent_tx, spent_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
    // Created here, not on the writer's thread, so that the part file exists before
    // anything can drop this future and its guard.
    let file = tokio::fs::File::create(&part_path)
        .await
        .map_err(ApiError::internal)?
        .into_std()
        .await;
    let writer =
        tokio::task::spawn_blocking(move || write_pieces(file, limits, &mut rx, &spent_tx));
    let mut read_error = None;
    let mut ended = false;
    while !ended {
        // Each piece is a whole buffer (the last excepted), so that the channel holds
        // `DEPTH` buffers' worth of bytes however small the body's frames are.
        let mut buf = spent_rx.try_recv().unwrap_or_else(|_| vec![0u8; BUF]);
        let mut n = 0;
        while n < BUF {
            match body.read(&mut buf[n..]).await {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        if read_error.is_some() {
            break;
        }
        // A send fails only when the writer has stopped: its result says why.
        if n > 0 && tx.send((buf, n)).await.is_err() {
            break;
        }
        if ended && tx.send((Vec::new(), 0)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let written = writer.await.map_err(ApiError::internal)?;
    let scan = match written {
        Ok(scan) if read_error.is_none() => scan,
        Err(WriteError::Scan(e)) => return Err(scan_error(e)),
        Err(WriteError::Io(e)) => return Err(ApiError::internal(e)),
        Ok(_) | Err(WriteError::Cut) => {
            return Err(ApiError::bad_request(format!(
                "the upload was cut or unreadable: {}",
                read_error.map_or_else(|| "the body ended early".to_owned(), |e| e.to_string())
            )));
        }
    };
    let file_name = format!("{id}.csv");
    let final_path = final_dir.join(&file_name);
    tokio::fs::rename(&part_path, &final_path)
        .await
        .map_err(ApiError::internal)?;
    part.0 = Some(final_path);
    let row = store::insert_dataset(db, &id, name, &file_name, &scan).await?;
    part.0 = None;
    Ok(row)
}

/// The body of `upload_dataset`: a raw CSV (`text/csv`) or a form with a `file` field
/// (`multipart/form-data`). The document lists both; any other type is a 415.
pub struct CsvUpload(pub poem::Body);

/// The media types [`CsvUpload`] takes.
const UPLOAD_TYPES: [&str; 3] = ["text/csv", "application/csv", "multipart/form-data"];

impl poem_openapi::payload::Payload for CsvUpload {
    const CONTENT_TYPE: &'static str = "text/csv";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        UPLOAD_TYPES.contains(&essence.as_str())
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new("string"),
        ))
    }
}

impl poem_openapi::payload::ParsePayload for CsvUpload {
    const IS_REQUIRED: bool = true;

    async fn from_request(
        _request: &poem::Request,
        body: &mut poem::RequestBody,
    ) -> poem::Result<Self> {
        Ok(Self(body.take()?))
    }
}

impl<'a> poem_openapi::ApiExtractor<'a> for CsvUpload {
    const TYPES: &'static [poem_openapi::ApiExtractorType] =
        &[poem_openapi::ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef};
        let csv = MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("The CSV itself; `name` is then required (else 422)."),
            ..MetaSchema::new_with_format("string", "binary")
        }));
        let form = MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("A form whose only field is the file."),
            required: vec!["file"],
            properties: vec![(
                "file",
                MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary"))),
            )],
            ..MetaSchema::new("object")
        }));
        Some(MetaRequest {
            description: Some(
                "The dataset: a CSV with a header row, as `text/csv` or as the `file` field \
                 of a form. A CSV that cannot be read (no header, ragged rows) is a 422.",
            ),
            content: vec![
                MetaMediaType {
                    content_type: "text/csv",
                    schema: csv,
                },
                MetaMediaType {
                    content_type: "multipart/form-data",
                    schema: form,
                },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        use poem_openapi::payload::{ParsePayload, Payload};
        match request.content_type() {
            Some(ct) if Self::check_content_type(ct) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(ct) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: ct.to_owned(),
            }
            .into()),
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}

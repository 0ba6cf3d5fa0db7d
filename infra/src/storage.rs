//! S3 access: originals are read (HEAD for ETag and size, GET for bytes),
//! renditions are written once and handed out as presigned GET URLs.
//! Every call runs under the SDK's operation timeout, so a dead S3 is an error
//! within `KILN_S3_TIMEOUT_MS`, never a hang.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;

use crate::config::S3Config;

/// Long-lived, immutable: a rendition's key changes whenever its bytes would.
pub const RENDITION_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    /// The object changed since its ETag was read.
    #[error("object changed")]
    Changed,
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

/// What a HEAD of an original tells.
#[derive(Clone, Debug)]
pub struct ObjectMeta {
    pub etag: String,
    pub size: u64,
    pub content_type: Option<String>,
}

/// A fetched object with the headers a proxy response needs.
pub struct FetchedObject {
    pub body: ByteStream,
    pub size: u64,
    pub content_type: Option<String>,
}

/// An original being uploaded in parts ([`Storage::begin_original_upload`]).
/// Ended by [`finish`](Self::finish) or [`abort`](Self::abort).
pub struct OriginalUpload {
    storage: Storage,
    key: String,
    upload_id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
}

impl OriginalUpload {
    /// Sends the next part (at least 5 MiB, but for the last).
    pub async fn part(&mut self, body: Bytes) -> Result<(), StorageError> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let out = self
            .storage
            .client
            .upload_part()
            .bucket(&self.storage.config.originals_bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, "UploadPart"))?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Completes the upload: the object appears whole; its ETag.
    pub async fn finish(self) -> Result<String, StorageError> {
        let out = self
            .storage
            .client
            .complete_multipart_upload()
            .bucket(&self.storage.config.originals_bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(e, "CompleteMultipartUpload"))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Drops the parts sent so far; the object is never created.
    pub async fn abort(self) {
        let aborted = self
            .storage
            .client
            .abort_multipart_upload()
            .bucket(&self.storage.config.originals_bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(err) = aborted {
            tracing::warn!(key = %self.key, error = %anyhow::Error::new(err), "aborting a multipart upload failed");
        }
    }
}

#[derive(Clone)]
pub struct Storage {
    client: Client,
    /// Signs presigned URLs for the public endpoint (may differ from the internal one).
    presigner: Client,
    config: S3Config,
}

fn build_client(cfg: &S3Config, endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(cfg.timeout.min(Duration::from_secs(2)))
        .operation_timeout(cfg.timeout)
        .build();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &cfg.access_key_id,
            &cfg.secret_access_key,
            None,
            None,
            "kiln",
        ))
        .timeout_config(timeouts)
        // Only what S3 requires: extra checksums cost CPU and some S3 servers reject them.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

fn classify<E>(err: SdkError<E>, what: &str) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err {
        match service.raw().status().as_u16() {
            404 => return StorageError::NotFound,
            412 => return StorageError::Changed,
            _ => {}
        }
    }
    StorageError::Unavailable(anyhow::Error::new(err).context(what.to_owned()))
}

impl Storage {
    pub fn new(config: S3Config) -> Self {
        let client = build_client(&config, &config.endpoint);
        let presigner = if config.public_endpoint == config.endpoint {
            client.clone()
        } else {
            build_client(&config, &config.public_endpoint)
        };
        Self {
            client,
            presigner,
            config,
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// The underlying SDK client, for tooling and tests that need other calls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn head_original(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.head(&self.config.originals_bucket, key, "HEAD original")
            .await
    }

    async fn head(
        &self,
        bucket: &str,
        key: &str,
        what: &'static str,
    ) -> Result<ObjectMeta, StorageError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, what))?;
        Ok(ObjectMeta {
            etag: out.e_tag().unwrap_or_default().to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_owned),
        })
    }

    /// Reads an original, failing with [`StorageError::Changed`] if its ETag moved on.
    pub async fn get_original(
        &self,
        key: &str,
        etag: &str,
        max_bytes: u64,
    ) -> Result<Bytes, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.config.originals_bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
            .map_err(|e| classify(e, "GET original"))?;
        let too_large =
            || StorageError::Unavailable(anyhow::anyhow!("original grew past the byte limit"));
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        if length > max_bytes {
            return Err(too_large());
        }
        // Read no further than the limit, whatever the length header said.
        let mut body = out.body;
        let mut bytes = bytes::BytesMut::with_capacity(length as usize);
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            StorageError::Unavailable(anyhow::Error::new(e).context("reading original body"))
        })? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.freeze())
    }

    pub async fn put_original(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> anyhow::Result<()> {
        self.store_original(key, body, content_type)
            .await
            .map_err(|e| anyhow::anyhow!("PUT original: {e}"))?;
        Ok(())
    }

    /// Stores an original in one PUT; its new ETag.
    pub async fn store_original(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let out = self
            .client
            .put_object()
            .bucket(&self.config.originals_bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, "PUT original"))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Whether an original exists (a HEAD).
    pub async fn original_exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.head_original(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Starts a multipart upload of an original too large for one part:
    /// its parts are sent as they arrive, so the api holds one part, not the
    /// whole file.
    pub async fn begin_original_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<OriginalUpload, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.config.originals_bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify(e, "CreateMultipartUpload"))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| StorageError::Unavailable(anyhow::anyhow!("no upload id")))?
            .to_owned();
        Ok(OriginalUpload {
            storage: self.clone(),
            key: key.to_owned(),
            upload_id,
            parts: Vec::new(),
        })
    }

    pub async fn put_rendition(
        &self,
        object_key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.config.cache_bucket)
            .key(object_key)
            .content_type(content_type)
            .cache_control(RENDITION_CACHE_CONTROL)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(e, "PUT rendition"))?;
        Ok(())
    }

    pub async fn get_rendition(&self, object_key: &str) -> Result<FetchedObject, StorageError> {
        self.open(&self.config.cache_bucket, object_key, "GET rendition")
            .await
    }

    /// An original as a stream (downloads through the api).
    pub async fn open_original(&self, key: &str) -> Result<FetchedObject, StorageError> {
        self.open(&self.config.originals_bucket, key, "GET original")
            .await
    }

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        what: &'static str,
    ) -> Result<FetchedObject, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, what))?;
        Ok(FetchedObject {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_owned),
            body: out.body,
        })
    }

    /// Removes an original (S3 answers a missing key as deleted).
    pub async fn delete_original(&self, key: &str) -> Result<(), StorageError> {
        self.delete(&self.config.originals_bucket, key, "DELETE original")
            .await
    }

    async fn delete(&self, bucket: &str, key: &str, what: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, what))?;
        Ok(())
    }

    /// Removes rendition objects, several at a time; stops at the first
    /// failure (what is left is deleted when the purge is asked again).
    pub async fn delete_renditions(&self, object_keys: Vec<String>) -> Result<usize, StorageError> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        futures_util::stream::iter(object_keys)
            .map(|key| {
                let storage = self.clone();
                async move { storage.delete_rendition(&key).await }
            })
            .buffer_unordered(16)
            .try_fold(0, |deleted, ()| async move { Ok(deleted + 1) })
            .await
    }

    /// Removes a rendition object (previews are deleted once delivered).
    pub async fn delete_rendition(&self, object_key: &str) -> Result<(), StorageError> {
        self.delete(&self.config.cache_bucket, object_key, "DELETE rendition")
            .await
    }

    /// A stored rendition's size and type, if it exists (a retried job finds
    /// the work an earlier attempt uploaded before it could record it).
    pub async fn rendition_meta(
        &self,
        object_key: &str,
    ) -> Result<Option<ObjectMeta>, StorageError> {
        match self
            .head(&self.config.cache_bucket, object_key, "HEAD rendition")
            .await
        {
            Ok(meta) => Ok(Some(meta)),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A presigned GET URL for a rendition, valid for `ttl`.
    pub async fn presign_rendition(
        &self,
        object_key: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let bucket = &self.config.cache_bucket;
        self.presign_get(bucket, object_key, ttl, "presign rendition", |get| get)
            .await
    }

    /// A presigned GET URL for an original that downloads as `filename`
    /// (`Content-Disposition: attachment`), valid for `ttl`.
    pub async fn presign_download(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let bucket = &self.config.originals_bucket;
        self.presign_get(bucket, key, ttl, "presign download", |get| {
            get.response_content_disposition(attachment(filename))
        })
        .await
    }

    /// A presigned GET URL for an original, answered with `content_type`,
    /// valid for `ttl` (partners' `/originals/`).
    pub async fn presign_original(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let bucket = &self.config.originals_bucket;
        self.presign_get(bucket, key, ttl, "presign original", |get| {
            get.response_content_type(content_type)
        })
        .await
    }

    /// Presigns a GET of `bucket/key`, with response overrides set by `customise`.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: Duration,
        what: &'static str,
        customise: impl FnOnce(GetObjectFluentBuilder) -> GetObjectFluentBuilder,
    ) -> Result<String, StorageError> {
        let config = presigning(ttl)?;
        let request = customise(self.presigner.get_object().bucket(bucket).key(key))
            .presigned(config)
            .await
            .map_err(|e| classify(e, what))?;
        Ok(request.uri().to_owned())
    }

    /// Readiness probe: both buckets reachable.
    pub async fn check(&self) -> Result<(), StorageError> {
        for bucket in [&self.config.originals_bucket, &self.config.cache_bucket] {
            self.client
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| classify(e, "HEAD bucket"))?;
        }
        Ok(())
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, StorageError> {
    PresigningConfig::expires_in(ttl)
        .map_err(|e| StorageError::Unavailable(anyhow::Error::new(e).context("presigning config")))
}

/// The media type of an object: from its extension when that is a known
/// one (a stored `binary/octet-stream` is a common upload mistake), else what
/// was stored, else `application/octet-stream`.
pub fn content_type_of(key: &str, stored: Option<&str>) -> String {
    let extension = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let known = match extension.as_deref() {
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("png") => Some("image/png"),
        Some("webp") => Some("image/webp"),
        Some("avif") => Some("image/avif"),
        Some("gif") => Some("image/gif"),
        Some("tif" | "tiff") => Some("image/tiff"),
        Some("svg") => Some("image/svg+xml"),
        Some("heic") => Some("image/heic"),
        Some("pdf") => Some("application/pdf"),
        Some("zip") => Some("application/zip"),
        Some("mp4") => Some("video/mp4"),
        _ => None,
    };
    known
        .or(stored.filter(|t| !t.is_empty()))
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `attachment; filename="…"` with an RFC 5987 `filename*` for non-ASCII names.
pub fn attachment(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_extension_then_the_stored_type() {
        assert_eq!(
            content_type_of("a/b.JPG", Some("binary/octet-stream")),
            "image/jpeg"
        );
        assert_eq!(content_type_of("a/b.webp", None), "image/webp");
        assert_eq!(
            content_type_of("a/b.raw", Some("image/x-raw")),
            "image/x-raw"
        );
        assert_eq!(content_type_of("a/b", None), "application/octet-stream");
    }
}

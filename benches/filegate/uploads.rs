//! Uploads through the gateway (gRPC client stream) and straight to the
//! emulator (the project's Filestack client), timed side by side.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use filegate::filestack::{FilestackClient, FilestackConfig, UploadSpec};
use filegate::pb::v1::file_gateway_service_client::FileGatewayServiceClient;
use filegate::pb::v1::{self as pb, upload_request};
use filegate::secret::Secret;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::procs::{API_KEY, APP_SECRET, Emulator, UploadSettings};

/// Bytes per gRPC message (the issue asks for 1-3 MiB).
pub const MESSAGE_BYTES: usize = 2 << 20;
/// Largest gRPC message either side accepts.
const MAX_MESSAGE: usize = 8 << 20;

/// Pseudo-random bytes, generated once and sliced without copying.
pub struct Payload {
    bytes: Bytes,
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Payload {
        Payload { bytes }
    }
}

impl Payload {
    /// `len` bytes from a xorshift generator (incompressible, cheap to make).
    pub fn new(len: usize) -> Payload {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        bytes.truncate(len);
        Payload {
            bytes: Bytes::from(bytes),
        }
    }

    /// All of its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `size` bytes as chunks of at most [`MESSAGE_BYTES`]; sizes beyond the
    /// payload repeat it.
    pub fn chunks(&self, size: usize) -> Vec<Bytes> {
        let mut chunks = Vec::with_capacity(size.div_ceil(MESSAGE_BYTES));
        let mut left = size;
        while left > 0 {
            let mut offset = (size - left) % self.bytes.len();
            let mut take = left.min(MESSAGE_BYTES);
            if offset + take > self.bytes.len() {
                offset = 0;
                take = take.min(self.bytes.len());
            }
            chunks.push(self.bytes.slice(offset..offset + take));
            left -= take;
        }
        chunks
    }
}

/// A gRPC client of the gateway with the caller's token.
#[derive(Clone)]
pub struct GatewayClient {
    client: FileGatewayServiceClient<Channel>,
    authorization: MetadataValue<tonic::metadata::Ascii>,
}

impl GatewayClient {
    /// One HTTP/2 connection to `grpc_url`.
    pub async fn connect(grpc_url: &str, token: &str) -> anyhow::Result<GatewayClient> {
        let channel = Channel::from_shared(grpc_url.to_owned())?
            .connect()
            .await
            .with_context(|| format!("connecting to {grpc_url}"))?;
        Self::on(channel, token)
    }

    /// A client over an existing connection.
    pub fn on(channel: Channel, token: &str) -> anyhow::Result<GatewayClient> {
        let client = FileGatewayServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(GatewayClient {
            client,
            authorization: format!("Bearer {token}").parse()?,
        })
    }

    /// The same client, compressing every request message with `encoding`.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> GatewayClient {
        self.client = self.client.send_compressed(encoding);
        self
    }

    /// `message` with the authorization metadata.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// The raw tonic client, for calls built with [`GatewayClient::request`].
    pub fn raw(&mut self) -> &mut FileGatewayServiceClient<Channel> {
        &mut self.client
    }

    /// Uploads `chunks` as one file (size declared) and returns the document.
    pub async fn upload(&mut self, name: &str, chunks: Vec<Bytes>) -> anyhow::Result<pb::Document> {
        let size: usize = chunks.iter().map(Bytes::len).sum();
        let spec = pb::UploadSpec {
            filename: name.to_owned(),
            content_type: "application/octet-stream".to_owned(),
            size_bytes: Some(size as i64),
            ..Default::default()
        };
        let mut first = Some(upload_request::FirstMessage::Spec(spec));
        let messages = chunks.into_iter().map(move |data| pb::UploadRequest {
            first_message: first.take(),
            write_offset: 0,
            data,
        });
        let request = self.request(futures_util::stream::iter(messages));
        let response = self.client.upload(request).await?.into_inner();
        response
            .document
            .context("an upload answer without a document")
    }

    /// Deletes a document (outside the timed part of a run).
    pub async fn delete(&mut self, document_id: &str) -> anyhow::Result<()> {
        let request = self.request(pb::DeleteRequest {
            document_id: document_id.to_owned(),
        });
        self.client.delete(request).await?;
        Ok(())
    }
}

/// The project's Filestack client pointed at the emulator, with the
/// gateway's part size and parts in flight.
pub fn direct_client(
    emulator: &Emulator,
    settings: UploadSettings,
) -> anyhow::Result<FilestackClient> {
    let mut config = FilestackConfig::emulator(&emulator.url, API_KEY, Secret::new(APP_SECRET));
    config.part_size = settings.part_size;
    config.parts_in_flight = settings.parts_in_flight;
    Ok(FilestackClient::new(config)?)
}

/// One timed upload through the gateway; the file is deleted afterwards.
pub async fn through_gateway(
    client: &mut GatewayClient,
    payload: &Payload,
    size: usize,
) -> anyhow::Result<Duration> {
    let chunks = payload.chunks(size);
    let started = Instant::now();
    let document = client.upload("bench.bin", chunks).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        document.size_bytes == size as i64,
        "stored {} bytes",
        document.size_bytes
    );
    client.delete(&document.id).await?;
    Ok(elapsed)
}

/// One timed upload straight to the emulator; the file is deleted afterwards.
pub async fn direct(
    client: &FilestackClient,
    payload: &Payload,
    size: usize,
) -> anyhow::Result<Duration> {
    let chunks = payload.chunks(size);
    let body = futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, Infallible>));
    let spec = UploadSpec {
        size: Some(size as u64),
        path: Some("bench/".to_owned()),
        ..UploadSpec::new("bench.bin", "application/octet-stream")
    };
    let started = Instant::now();
    let stored = client.upload(body, spec).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(stored.size == size as u64, "stored {} bytes", stored.size);
    client.delete(&stored.handle).await?;
    Ok(elapsed)
}

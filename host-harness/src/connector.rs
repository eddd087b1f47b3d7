//! The component's operations for one station, as plain Rust calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Resource;

use crate::blobs::Blob;
use crate::runtime::{
    CallError, CallOptions, ConnectorError, Disposition, Document, Header, HttpRequest,
    HttpResponse, Mic, OutgoingDocument, Runtime, StateEntry, Station, api,
};

// The texts for people live in `describe`; callers have long named them here.
pub use crate::describe::{describe, describe_problem, error_code, has_errors};

/// One station's view of the component: the shared runtime plus the
/// station's key store and state. Each operation with a configuration also
/// reads that connection's TLS settings natively and hands them to the call
/// ([`CallOptions`]): `wasi:http` has no TLS options, so the host applies
/// them to the component's https requests.
#[derive(Clone)]
pub struct Connector {
    /// The loaded component.
    pub runtime: Arc<Runtime>,
    /// The station's services.
    pub station: Arc<Station>,
}

/// A document to send.
#[derive(Debug, Clone)]
pub struct SendDocument {
    /// File name for Content-Disposition, if any.
    pub file_name: Option<String>,
    /// MIME type, e.g. `application/edi-x12`.
    pub content_type: String,
    /// Its bytes.
    pub content: Content,
}

/// Where a document's bytes are.
#[derive(Debug, Clone)]
pub enum Content {
    /// In memory.
    Bytes(Vec<u8>),
    /// In a file, read a piece at a time as the message is built.
    File(PathBuf),
}

impl From<&Document> for SendDocument {
    fn from(document: &Document) -> Self {
        SendDocument {
            file_name: document.file_name.clone(),
            content_type: document.content_type.clone(),
            content: Content::Bytes(document.content.clone()),
        }
    }
}

/// A document without its bytes, until they are a blob of the call.
struct DocumentMeta {
    file_name: Option<String>,
    content_type: String,
}

impl DocumentMeta {
    fn with_content(self, content: Resource<Blob>) -> wasmtime::Result<OutgoingDocument> {
        Ok(OutgoingDocument {
            file_name: self.file_name,
            content_type: self.content_type,
            content,
        })
    }
}

/// A message as `build-message` built it.
pub struct BuiltMessage {
    /// Its Message-ID.
    pub message_id: String,
    /// The HTTP header fields to send it with.
    pub headers: Vec<Header>,
    /// The HTTP body where the component wrote it: in memory, or a spill
    /// file past [`crate::blobs::SPILL_BYTES`]. Not read back here, since
    /// a large message is sent or stored from where it lies
    /// ([`Blob::write_to`]); [`Blob::into_bytes`] brings it into memory.
    pub body: Blob,
    /// The MIC the partner's MDN must return.
    pub mic: Mic,
}

/// An AS2 request as the host received it. The body is read once, into
/// memory or a spill file, and each `export` call reads it from there.
#[derive(Clone)]
pub struct InboundRequest {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header fields in the order received.
    pub headers: Vec<Header>,
    /// The body.
    pub body: Arc<Blob>,
}

impl InboundRequest {
    /// A request whose body is `body`, held in memory.
    pub fn new(method: &str, path: &str, headers: Vec<Header>, body: Vec<u8>, dir: &Path) -> Self {
        InboundRequest {
            method: method.into(),
            path: path.into(),
            headers,
            body: Arc::new(Blob::from_bytes(dir, body)),
        }
    }
}

/// What `export` made of one request, its documents' bytes taken out of
/// the call as blobs.
#[derive(Debug)]
pub struct Exported {
    /// The documents received; empty when the message was rejected.
    pub documents: Vec<Delivered>,
    /// The disposition the MDN reports.
    pub disposition: Disposition,
    /// The HTTP response to send back.
    pub response: HttpResponse,
    /// The MDN to POST to the partner, when they asked for an asynchronous one.
    pub async_mdn: Option<api::AsyncMdn>,
    /// State entries to write once the documents are stored.
    pub commit: Vec<StateEntry>,
    /// Where a message of ours stands, when the request was its asynchronous MDN.
    pub receipt: Option<api::SendOutcome>,
}

/// One received document.
#[derive(Debug)]
pub struct Delivered {
    /// Its message's Message-ID.
    pub message_id: String,
    /// The partner's AS2 identifier.
    pub partner: String,
    /// File name from Content-Disposition, if any. Untrusted.
    pub file_name: Option<String>,
    /// MIME type of the payload.
    pub content_type: String,
    /// The payload, as the component handed it over.
    pub content: Blob,
    /// The MIC of the received content.
    pub mic: Mic,
    /// Whether the message was signed (and the signature verified).
    pub signed: bool,
    /// Whether the message was encrypted.
    pub encrypted: bool,
}

/// A call's outcome: the host failed (trap), or the component answered.
pub type Outcome<T> = Result<Result<T, ConnectorError>, CallError>;

impl Connector {
    /// A connector for `station` on `runtime`.
    pub fn new(runtime: Arc<Runtime>, station: Arc<Station>) -> Self {
        Connector { runtime, station }
    }

    /// `config-schema`.
    pub fn config_schema(&self) -> Result<String, CallError> {
        self.runtime.call(&self.station, |guest, store| {
            guest.call_config_schema(store)
        })
    }

    /// `config-ui-schema`.
    pub fn config_ui_schema(&self) -> Result<String, CallError> {
        self.runtime.call(&self.station, |guest, store| {
            guest.call_config_ui_schema(store)
        })
    }

    /// `validate-config`: every problem, errors and warnings.
    pub fn validate_config(&self, config: &str) -> Result<Vec<api::Problem>, CallError> {
        let options = CallOptions::for_config(config);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                guest.call_validate_config(store, config)
            })
    }

    /// `test-connection`.
    pub fn test_connection(&self, config: &str) -> Result<api::ConnectionTest, CallError> {
        let options = CallOptions::for_config(config);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                guest.call_test_connection(store, config)
            })
    }

    /// `export`: one inbound AS2 request.
    pub fn export(&self, config: &str, request: &InboundRequest) -> Outcome<Exported> {
        let options = CallOptions::for_config(config);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                let body = store
                    .data_mut()
                    .push_blob(Blob::shared(request.body.clone()))?;
                let wit_request = HttpRequest {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    headers: request.headers.clone(),
                    body,
                };
                let result = match guest.call_export(&mut *store, config, &wit_request)? {
                    Ok(result) => result,
                    Err(e) => return Ok(Err(e)),
                };
                let documents = result
                    .documents
                    .into_iter()
                    .map(|received| {
                        Ok(Delivered {
                            message_id: received.message_id,
                            partner: received.partner,
                            file_name: received.document.file_name,
                            content_type: received.document.content_type,
                            content: store.data_mut().take_blob(received.document.content)?,
                            mic: received.mic,
                            signed: received.signed,
                            encrypted: received.encrypted,
                        })
                    })
                    .collect::<wasmtime::Result<Vec<_>>>()?;
                Ok(Ok(Exported {
                    documents,
                    disposition: result.disposition,
                    response: result.response,
                    async_mdn: result.async_mdn,
                    commit: result.commit,
                    receipt: result.receipt,
                }))
            })
    }

    /// `import`: send documents held in memory.
    pub fn import(
        &self,
        config: &str,
        documents: &[Document],
    ) -> Outcome<Vec<Result<api::SendOutcome, ConnectorError>>> {
        self.send(config, documents.iter().map(SendDocument::from).collect())
    }

    /// `import`: send documents, each read from memory or from its file a
    /// piece at a time.
    pub fn send(
        &self,
        config: &str,
        documents: Vec<SendDocument>,
    ) -> Outcome<Vec<Result<api::SendOutcome, ConnectorError>>> {
        self.send_with(config, documents, false)
    }

    /// `import-together`: the documents in one message when the partner
    /// reads several (RFC 6362), else one message each; one result per
    /// message sent.
    pub fn send_together(
        &self,
        config: &str,
        documents: Vec<SendDocument>,
    ) -> Outcome<Vec<Result<api::SendOutcome, ConnectorError>>> {
        self.send_with(config, documents, true)
    }

    fn send_with(
        &self,
        config: &str,
        documents: Vec<SendDocument>,
        together: bool,
    ) -> Outcome<Vec<Result<api::SendOutcome, ConnectorError>>> {
        let options = CallOptions::for_config(config);
        let blobs = self.blobs(documents)?;
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                let documents = blobs
                    .into_iter()
                    .map(|(meta, blob)| meta.with_content(store.data_mut().push_blob(blob)?))
                    .collect::<wasmtime::Result<Vec<_>>>()?;
                match together {
                    true => guest.call_import_together(store, config, &documents),
                    false => guest.call_import(store, config, &documents),
                }
            })
    }

    /// `build-message`: the message `import` would send, neither sent nor recorded.
    pub fn build_message(&self, config: &str, document: &Document) -> Outcome<BuiltMessage> {
        self.build(config, SendDocument::from(document))
    }

    /// [`Connector::build_message`] of a document in memory or in a file.
    pub fn build(&self, config: &str, document: SendDocument) -> Outcome<BuiltMessage> {
        let [(meta, blob)]: [_; 1] = self
            .blobs(vec![document])?
            .try_into()
            .map_err(|_| CallError::Host(anyhow::anyhow!("one document makes one blob")))?;
        self.runtime.call(&self.station, |guest, store| {
            let document = meta.with_content(store.data_mut().push_blob(blob)?)?;
            let built = match guest.call_build_message(&mut *store, config, &document)? {
                Ok(built) => built,
                Err(e) => return Ok(Err(e)),
            };
            let body = store.data_mut().take_blob(built.body)?;
            Ok(Ok(BuiltMessage {
                message_id: built.message_id,
                headers: built.headers,
                body,
                mic: built.mic,
            }))
        })
    }

    /// The blobs of `documents`, beside what else each document says.
    fn blobs(&self, documents: Vec<SendDocument>) -> Result<Vec<(DocumentMeta, Blob)>, CallError> {
        let dir = self.station.data_dir.join("blobs");
        documents
            .into_iter()
            .map(|document| {
                let blob = match document.content {
                    Content::Bytes(bytes) => Blob::from_bytes(&dir, bytes),
                    Content::File(path) => Blob::from_file(&dir, &path).map_err(CallError::Host)?,
                };
                Ok((
                    DocumentMeta {
                        file_name: document.file_name,
                        content_type: document.content_type,
                    },
                    blob,
                ))
            })
            .collect()
    }

    /// `resume`: send again what this connection still owes the partner.
    pub fn resume(&self, config: &str) -> Outcome<Vec<Result<api::SendOutcome, ConnectorError>>> {
        self.runtime.call(&self.station, |guest, store| {
            guest.call_resume(store, config)
        })
    }

    /// `list-messages`.
    pub fn list_messages(
        &self,
        config: &str,
        filter: &api::MessageFilter,
    ) -> Outcome<Vec<api::MessageStatus>> {
        self.runtime.call(&self.station, |guest, store| {
            guest.call_list_messages(store, config, *filter)
        })
    }

    /// `lookup-message`.
    pub fn lookup_message(&self, config: &str, message_id: &str) -> Outcome<api::MessageStatus> {
        let options = CallOptions::for_config(config);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                guest.call_lookup_message(store, config, message_id)
            })
    }

    /// `cem-request`: offers `station.next_private_key`'s certificate to
    /// the partner, to take over at `respond_by` (Unix seconds).
    pub fn cem_request(&self, config: &str, respond_by: u64) -> Outcome<api::CemSent> {
        let options = CallOptions::for_config(config);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                guest.call_cem_request(store, config, respond_by)
            })
    }

    /// `cem-answer`: accepts or rejects the partner's CEM request.
    pub fn cem_answer(
        &self,
        config: &str,
        request_id: &str,
        accept: bool,
        reason: Option<&str>,
    ) -> Outcome<api::SendOutcome> {
        let options = CallOptions::for_config(config);
        let reason = reason.map(str::to_string);
        self.runtime
            .call_with(&self.station, &options, |guest, store| {
                guest.call_cem_answer(store, config, request_id, accept, reason.as_deref())
            })
    }

    /// `cem-list`: the connection's certificate exchanges.
    pub fn cem_list(&self, config: &str) -> Outcome<Vec<api::CemExchange>> {
        self.runtime.call(&self.station, |guest, store| {
            guest.call_cem_list(store, config)
        })
    }
}

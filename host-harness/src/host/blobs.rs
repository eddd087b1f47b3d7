//! `as2:connector/types`: its `blob` resource, the message data of a call
//! in memory or in a spill file below the station's `blobs/` folder. A call
//! may append only its allowance, so that no call can fill the disk.

use std::path::PathBuf;

use wasmtime::component::Resource;

use super::bindings::as2::connector::types::{self, Error as ConnectorError, ErrorCode};
use super::{CallState, discard, error};
use crate::blobs::Blob;

impl types::Host for CallState {}

impl CallState {
    /// Hands `blob` to the guest.
    pub fn push_blob(&mut self, blob: Blob) -> wasmtime::Result<Resource<Blob>> {
        Ok(self.table.push(blob)?)
    }

    /// Takes back a blob the guest returned.
    pub fn take_blob(&mut self, blob: Resource<Blob>) -> wasmtime::Result<Blob> {
        Ok(self.table.delete(blob)?)
    }

    /// Where this station's blob files live.
    fn blob_dir(&self) -> PathBuf {
        self.station.data_dir.join("blobs")
    }
}

fn blob_error(e: anyhow::Error) -> ConnectorError {
    error(ErrorCode::StorageFailed, format!("{e:#}"))
}

impl types::HostBlob for CallState {
    fn new(&mut self) -> wasmtime::Result<Resource<Blob>> {
        let blob = Blob::new(&self.blob_dir());
        Ok(self.table.push(blob)?)
    }

    fn size(&mut self, blob: Resource<Blob>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&blob)?.len())
    }

    fn read(
        &mut self,
        blob: Resource<Blob>,
        offset: u64,
        length: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, ConnectorError>> {
        Ok(self
            .table
            .get(&blob)?
            .read(offset, length)
            .map_err(blob_error))
    }

    fn append(
        &mut self,
        blob: Resource<Blob>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let allowance = self.blob_allowance;
        if data.len() as u64 > allowance {
            return Ok(Err(error(
                ErrorCode::StorageFailed,
                format!(
                    "the call wrote more than its {} MiB of message data",
                    self.blob_limit >> 20
                ),
            )));
        }
        self.blob_allowance -= data.len() as u64;
        Ok(self.table.get_mut(&blob)?.append(&data).map_err(blob_error))
    }

    fn keep(
        &mut self,
        blob: Resource<Blob>,
        name: String,
    ) -> wasmtime::Result<Result<(), ConnectorError>> {
        let state = &self.station.state;
        Ok(self
            .table
            .get_mut(&blob)?
            .keep(&name, state)
            .map_err(blob_error))
    }

    fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Option<Resource<Blob>>, ConnectorError>> {
        match Blob::open_kept(&self.blob_dir(), &name, &self.station.state) {
            Ok(Some(blob)) => Ok(Ok(Some(self.table.push(blob)?))),
            Ok(None) => Ok(Ok(None)),
            Err(e) => Ok(Err(blob_error(e))),
        }
    }

    fn forget(&mut self, name: String) -> wasmtime::Result<Result<(), ConnectorError>> {
        Ok(Blob::forget(&self.blob_dir(), &name, &self.station.state).map_err(blob_error))
    }

    fn drop(&mut self, blob: Resource<Blob>) -> wasmtime::Result<()> {
        discard(&mut self.table, blob)
    }
}

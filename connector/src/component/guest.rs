//! The exported `connector` interface: each operation handed to the module
//! of its group.

use super::bindings::exports::as2::connector::connector as api;
use super::{Component, form, receive, send, status, wit};

impl api::Guest for Component {
    fn config_schema() -> String {
        crate::config::schema_json()
    }

    fn config_ui_schema() -> String {
        crate::config::UI_SCHEMA.to_string()
    }

    fn validate_config(config: String) -> Vec<api::Problem> {
        form::validate_config(&config)
    }

    fn test_connection(config: String) -> api::ConnectionTest {
        form::test_connection(&config)
    }

    fn export(config: String, request: wit::HttpRequest) -> Result<api::ExportResult, wit::Error> {
        receive::export(&config, request)
    }

    fn import(
        config: String,
        documents: Vec<wit::OutgoingDocument>,
    ) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
        send::import(&config, documents)
    }

    fn import_together(
        config: String,
        documents: Vec<wit::OutgoingDocument>,
    ) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
        send::import_together(&config, documents)
    }

    fn cem_request(config: String, respond_by: u64) -> Result<api::CemSent, wit::Error> {
        super::cem::request(&config, respond_by)
    }

    fn cem_answer(
        config: String,
        request_id: String,
        accept: bool,
        reason: Option<String>,
    ) -> Result<api::SendOutcome, wit::Error> {
        super::cem::answer(&config, &request_id, accept, reason)
    }

    fn cem_list(config: String) -> Result<Vec<api::CemExchange>, wit::Error> {
        super::cem::list(&config)
    }

    fn build_message(
        config: String,
        document: wit::OutgoingDocument,
    ) -> Result<api::BuiltMessage, wit::Error> {
        send::build_message(&config, document)
    }

    fn resume(config: String) -> Result<Vec<Result<api::SendOutcome, wit::Error>>, wit::Error> {
        send::resume_sends(&config)
    }

    fn lookup_message(
        config: String,
        message_id: String,
    ) -> Result<api::MessageStatus, wit::Error> {
        status::lookup_message(&config, &message_id)
    }

    fn list_messages(
        config: String,
        filter: api::MessageFilter,
    ) -> Result<Vec<api::MessageStatus>, wit::Error> {
        status::list_messages(&config, filter)
    }
}

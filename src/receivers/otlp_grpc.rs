//! The OTLP gRPC `LogsService`, served with a codec that counts a request's log records
//! on the encoded bytes before decoding them: the generated server decodes first, and a
//! 4 MiB message of empty log records decodes to hundreds of megabytes. At most
//! `in_flight` requests are read and decoded at once across all connections; the others
//! wait their turn (within the request timeout), their bytes held back by HTTP/2 flow
//! control, so memory follows the number of slots and not the number of streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// What answers one decoded export request.
pub type ExportFn = Arc<
    dyn Fn(
            ExportLogsServiceRequest,
        ) -> BoxFuture<'static, Result<ExportLogsServiceResponse, Status>>
        + Send
        + Sync,
>;

/// `LogsService` over `export`, refusing requests of more than `max_records` log records
/// (or resource and scope entries) before they are decoded.
#[derive(Clone)]
pub struct LogsServer {
    pub receiver: Arc<str>,
    pub export: ExportFn,
    pub max_records: usize,
    pub max_message_bytes: usize,
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl NamedService for LogsServer {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl<B> tower::Service<http::Request<B>> for LogsServer
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let server = self.clone();
        Box::pin(async move {
            let Ok(_slot) = server.in_flight.clone().acquire_owned().await else {
                return Ok(Status::unavailable("the receiver is stopping").into_http());
            };
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let codec = CountingCodec {
                receiver: server.receiver.clone(),
                max_records: server.max_records,
            };
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(server.max_message_bytes), None);
            Ok(grpc.unary(ExportService(server.export), request).await)
        })
    }
}

struct ExportService(ExportFn);

impl UnaryService<ExportLogsServiceRequest> for ExportService {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<'static, Result<Response<ExportLogsServiceResponse>, Status>>;

    fn call(&mut self, request: Request<ExportLogsServiceRequest>) -> Self::Future {
        let answer = (self.0)(request.into_inner());
        Box::pin(async move { answer.await.map(Response::new) })
    }
}

struct CountingCodec {
    receiver: Arc<str>,
    max_records: usize,
}

impl Codec for CountingCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = ExportLogsServiceRequest;
    type Encoder = <tonic_prost::ProstCodec<ExportLogsServiceResponse, ExportLogsServiceRequest> as Codec>::Encoder;
    type Decoder = CountingDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<ExportLogsServiceResponse, ExportLogsServiceRequest>::default()
            .encoder()
    }

    fn decoder(&mut self) -> CountingDecoder {
        CountingDecoder {
            receiver: self.receiver.clone(),
            max_records: self.max_records,
        }
    }
}

struct CountingDecoder {
    receiver: Arc<str>,
    max_records: usize,
}

impl Decoder for CountingDecoder {
    type Item = ExportLogsServiceRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let counts = super::otlp_count::protobuf(&bytes, self.max_records);
        if counts.is_some_and(|c| c.exceeds(self.max_records)) {
            super::count_refused(
                &self.receiver,
                super::Transport::Grpc,
                "too_many_records",
                1,
            );
            return Err(Status::invalid_argument(
                super::otlp::too_many_records_message(self.max_records),
            ));
        }
        // OTLP asks for INVALID_ARGUMENT, the caller's error, where tonic would say INTERNAL.
        ExportLogsServiceRequest::decode(bytes)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))
    }
}

//! OpenTelemetry trace export (off by default): spans for each query (`query` for DoGet,
//! `flight_info` for GetFlightInfo), its planning (`plan`), its streaming (`stream`) and each
//! sub-query sent to a source (`source_query`), exported over OTLP/gRPC. A W3C `traceparent`
//! header sent by the client makes the query's span a child of the client's trace.
//!
//! Spans carry the SQL text like the log lines do; sampling is parent-based with a ratio for
//! traces that start here.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::GatewayError;

/// Where and how traces are exported.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// OTLP/gRPC endpoint of a collector, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Share of traces started here that are kept (0.0 to 1.0).
    pub sample_ratio: f64,
    /// Longest wait for one export.
    pub timeout: std::time::Duration,
}

/// The tracer provider; flushes and stops the exporter when shut down.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Builds the exporter (inside a Tokio runtime: the gRPC channel lives on it).
    pub fn start(settings: &OtlpSettings) -> Result<Self, GatewayError> {
        if !(0.0..=1.0).contains(&settings.sample_ratio) {
            return Err(GatewayError::BadRequest(format!(
                "--otlp-sample-ratio must be between 0 and 1 (got {})",
                settings.sample_ratio
            )));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(settings.timeout)
            .build()
            .map_err(|e| {
                GatewayError::BadRequest(format!(
                    "--otlp-endpoint {}: cannot build the OTLP exporter: {e}",
                    settings.endpoint
                ))
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns the gateway's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + Send + Sync
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("meshgate"))
            .with_tracked_inactivity(false)
    }

    /// Exports what is buffered and stops.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OTLP exporter did not shut down cleanly");
        }
    }
}

struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The W3C trace context (`traceparent`, `tracestate`) a client sent, if any.
#[derive(Debug, Clone, Default)]
pub struct RemoteParent(Option<opentelemetry::Context>);

impl RemoteParent {
    /// Reads the trace context headers of a request.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Self {
        if metadata.get("traceparent").is_none() {
            return Self(None);
        }
        Self(Some(
            TraceContextPropagator::new().extract(&Metadata(metadata)),
        ))
    }

    /// Makes `span` a child of the client's span (no effect without a context or export).
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(cx) = &self.0 {
            let _ = span.set_parent(cx.clone());
        }
    }
}

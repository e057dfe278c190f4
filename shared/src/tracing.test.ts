import { describe, expect, it } from 'vitest';
import { tracing, tracingRequested } from './tracing.js';

describe('tracingRequested', () => {
  it('is off with no OTEL_* variables, and nothing of the SDK is active', () => {
    expect(tracingRequested({})).toEqual({ on: false });
    expect(tracing()).toBeUndefined();
  });
  it('is on with an OTLP endpoint, http/protobuf by default, http/json when asked', () => {
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toEqual({ on: true, protocol: 'http/protobuf' });
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c/v1/traces', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toEqual({ on: true, protocol: 'http/json' });
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toEqual({ on: true, protocol: 'http/protobuf' });
  });
  it('is off when disabled or exporter none, and says why for what it cannot do', () => {
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' })).toEqual({ on: false });
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' })).toEqual({ on: false });
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'zipkin' })).toMatchObject({ on: false, why: expect.stringContaining('only "otlp"') });
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toMatchObject({
      on: false,
      why: expect.stringContaining('OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported'),
    });
  });
});

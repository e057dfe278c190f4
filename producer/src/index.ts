export { PipelineClient, type SubmitOptions, type CollectOptions, type BatchOutcome } from './client.js';
export { mergeProgress, foldSummary, emptyTotals } from './checkpoint.js';
export { windowFor, SMALL_RESULTS_WINDOW, LARGE_RESULTS_WINDOW, type WindowLimits } from './reply-window.js';
export { BatchCollector, outputKey, type CollectedResult, type CombinedResult, type Emitted, type CollectorStats, type MissingResult } from './collector.js';
export { rangeJob, rangeJobs, countJobs, primeCountChunk, primeCountRanges, PRIME_COUNT_CHUNK, chunkCount, urlJob, newBatchId, correlationIdFor, BATCH_ID_PATTERN, type JobSpec, type RangeTarget } from './jobs.js';
export { jsonLine, HumanPrinter } from './output.js';
export { ResultFile, lineKey } from './result-file.js';
export { PipelineSession, type SessionOptions, type CallOptions } from './session.js';

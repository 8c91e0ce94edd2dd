// The JavaScript sample worker of the local task hub (@microsoft/durabletask-js).
//
//   node workers/js/worker.js --sidecar 127.0.0.1:4001 [--ready-file F] [--state-dir D]
//                             [--connect-timeout 60] [--register extra.js]
//
// Waits (bounded) until the Durable Task sidecar answers, connects with work item filters
// generated from what it registers (so the Python sample worker and any other worker keep their
// own work items), writes the ready file, and runs until SIGTERM/SIGINT. `--register` loads a
// module exporting `register(worker)` for more orchestrations (the test harness uses it).
// `python -m durable_helpers.local up` starts it next to the Python sample worker.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { parseArgs } = require("node:util");
const { ConsoleLogger, TaskHubGrpcClient, TaskHubGrpcWorker } = require("@microsoft/durabletask-js");
const { registerSamples } = require("./samples");

// Large messages as the sidecar sends them (durable_helpers/local/limits.py).
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
};

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve once the sidecar at `address` answers a query; reject after `seconds`. */
async function waitForSidecar(address, seconds) {
  const client = new TaskHubGrpcClient({ hostAddress: address, logger: new NoLogger() });
  const deadline = Date.now() + seconds * 1000;
  let last;
  try {
    while (Date.now() < deadline) {
      try {
        await client.getOrchestrationState("durable-helpers-js-worker-probe", false);
        return;
      } catch (error) {
        last = error;
        await sleep(200);
      }
    }
  } finally {
    await client.stop();
  }
  throw new Error(
    `No Durable Task sidecar answered at ${address} within ${seconds} s (${last && last.message}). ` +
      "Start one with 'python -m durable_helpers.local up' (or 'serve')."
  );
}

class NoLogger {
  error() {}
  warn() {}
  info() {}
  debug() {}
}

/** Build, connect and run a worker until a signal; `register(worker)` adds what it runs. */
async function runWorker({ sidecar, readyFile, connectTimeout = 60, register }) {
  await waitForSidecar(sidecar, connectTimeout);
  const worker = new TaskHubGrpcWorker({
    hostAddress: sidecar,
    options: CHANNEL_OPTIONS,
    logger: new ConsoleLogger(),
    workItemFilters: "auto",
    shutdownTimeoutMs: 5000,
  });
  register(worker);
  await worker.start();
  console.log(`JavaScript sample worker connected to ${sidecar} (Node ${process.version})`);
  if (readyFile) fs.writeFileSync(readyFile, String(process.pid));
  await new Promise((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  try {
    await worker.stop();
  } finally {
    if (readyFile) fs.rmSync(readyFile, { force: true });
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      sidecar: { type: "string", default: "127.0.0.1:4001" },
      "ready-file": { type: "string" },
      "state-dir": { type: "string" },
      "connect-timeout": { type: "string", default: "60" },
      register: { type: "string", multiple: true, default: [] },
    },
  });
  const connectTimeout = Number(values["connect-timeout"]);
  if (!(connectTimeout > 0)) throw new Error(`--connect-timeout takes seconds above 0, not ${values["connect-timeout"]}`);
  const extras = values.register.map((file) => require(path.resolve(file)));
  await runWorker({
    sidecar: values.sidecar,
    readyFile: values["ready-file"],
    connectTimeout,
    register: (worker) => {
      registerSamples(worker, values["state-dir"]);
      for (const extra of extras) extra.register(worker);
    },
  });
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(`error: ${error.message}`);
      process.exit(1);
    }
  );
}

module.exports = { runWorker, waitForSidecar };

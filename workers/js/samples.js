// The JavaScript sample orchestrations: the prototype's DurableFunctionsOrchestratorJS and the
// same patterns as the Python samples (durable_helpers/local/samples.py), with names of their own.
//
// | Orchestration                   | Input                          | Output
// |---------------------------------|--------------------------------|------------------------------------
// | DurableFunctionsOrchestratorJS  | (none)                         | ["Hello Tokyo!", "Hello Seattle!",
// |                                 |                                |  "Hello London!"] (Hello chained)
// | FanOutFanInJS                   | numbers, default [1,2,3,4,5]   | {"squares": [...], "total": 55}
// | ApprovalWorkflowJS              | {"timeout_seconds": 300}       | {"outcome": "Approved", "approval":
// |                                 |                                |  <data>} after event "Approval"
// | FailingOrchestrationJS          | {"failures": 1, "order": 42}   | Failed: ChargeCardJS throws
// |                                 |                                |  "Card declined for order 42 ..."
// | TimerDemoJS                     | {"seconds": 2}                 | {"waited_seconds": 2}
// | ParentOrchestrationJS           | cities                         | one *Python* HelloSequence child
// |                                 |                                |  per city: the greetings in order
//
// Activities: Hello (the prototype's: city -> "Hello <city>!", also registered by the Python
// sample worker with the same result), SquareJS, ChargeCardJS. Every orchestration and activity
// name but Hello ends in "JS", so the work item filters of the two sample workers never overlap
// on an orchestration.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { whenAll, whenAny } = require("@microsoft/durabletask-js");

const DEFAULT_CITIES = ["Tokyo", "Seattle", "London"];

let stateDir = path.join(os.tmpdir(), "durable-helpers-samples-js");

/** Count one more attempt for `key` (a small file under the state folder); returns 1, 2, ... */
function nextAttempt(key) {
  const folder = path.join(stateDir, "attempts");
  fs.mkdirSync(folder, { recursive: true });
  const digest = crypto.createHash("sha256").update(key).digest("hex").slice(0, 32);
  const file = path.join(folder, `${digest}.count`);
  let count = 0;
  try {
    count = parseInt(fs.readFileSync(file, "utf8"), 10) || 0;
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
  count += 1;
  fs.writeFileSync(file, String(count));
  return count;
}

function asObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
}

// ---------------------------------------------------------------------------------- activities
/** The prototype's activity: "Tokyo" -> "Hello Tokyo!". */
function Hello(context, name) {
  return `Hello ${name}!`;
}

function SquareJS(context, number) {
  return number * number;
}

/** Declines the card on the first `failures` attempts of this orchestration instance. */
function ChargeCardJS(context, data) {
  const options = asObject(data);
  const failures = Number.isInteger(options.failures) ? options.failures : 1;
  const order = options.order ?? 42;
  const attempt = nextAttempt(`charge-js/${context.orchestrationId}`);
  if (attempt <= failures) {
    throw new Error(`Card declined for order ${order} (declined attempt ${attempt} of ${failures})`);
  }
  return `Charged order ${order}`;
}

// ------------------------------------------------------------------------------ orchestrations
// The 2019 prototype's orchestrator (the Durable Functions JavaScript template of the day), line
// for line; durabletask-js 0.4.0 runs orchestrators written as async generators.
async function* DurableFunctionsOrchestratorJS(context) {
  const outputs = [];
  outputs.push(yield context.callActivity("Hello", "Tokyo"));
  outputs.push(yield context.callActivity("Hello", "Seattle"));
  outputs.push(yield context.callActivity("Hello", "London"));
  return outputs;
}

async function* FanOutFanInJS(context, numbers) {
  const items = Array.isArray(numbers) && numbers.length ? numbers : [1, 2, 3, 4, 5];
  const squares = yield whenAll(items.map((n) => context.callActivity("SquareJS", n)));
  return { squares, total: squares.reduce((a, b) => a + b, 0) };
}

async function* ApprovalWorkflowJS(context, options) {
  const timeout = Number(asObject(options).timeout_seconds ?? 300);
  context.setCustomStatus("WaitingForApproval");
  const approval = context.waitForExternalEvent("Approval");
  const timer = context.createTimer(new Date(context.currentUtcDateTime.getTime() + timeout * 1000));
  const winner = yield whenAny([approval, timer]);
  if (winner === timer) {
    context.setCustomStatus("TimedOut");
    return { outcome: "TimedOut" };
  }
  const data = approval.getResult();
  const rejected = data === false || asObject(data).approved === false;
  const outcome = rejected ? "Rejected" : "Approved";
  context.setCustomStatus(outcome);
  return { outcome, approval: data };
}

async function* FailingOrchestrationJS(context, options) {
  const greeting = yield context.callActivity("Hello", "Tokyo");
  const opts = asObject(options);
  const data = { failures: Number.isInteger(opts.failures) ? opts.failures : 1, order: opts.order ?? 42 };
  const charged = yield context.callActivity("ChargeCardJS", data);
  return [greeting, charged];
}

async function* TimerDemoJS(context, options) {
  const seconds = Number(asObject(options).seconds ?? 2);
  yield context.createTimer(new Date(context.currentUtcDateTime.getTime() + seconds * 1000));
  return { waited_seconds: seconds };
}

/** One Python HelloSequence sub-orchestration per city: JavaScript calling Python. */
async function* ParentOrchestrationJS(context, cities) {
  const items = Array.isArray(cities) && cities.length ? cities : DEFAULT_CITIES;
  const children = items.map((city) => context.callSubOrchestrator("HelloSequence", [city]));
  const results = yield whenAll(children);
  return results.flat();
}

const ORCHESTRATORS = {
  DurableFunctionsOrchestratorJS,
  FanOutFanInJS,
  ApprovalWorkflowJS,
  FailingOrchestrationJS,
  TimerDemoJS,
  ParentOrchestrationJS,
};
const ACTIVITIES = { Hello, SquareJS, ChargeCardJS };

/** Register every sample on `worker`; attempt counters go under `folder`. */
function registerSamples(worker, folder) {
  if (folder) stateDir = folder;
  for (const [name, fn] of Object.entries(ORCHESTRATORS)) worker.addNamedOrchestrator(name, fn);
  for (const [name, fn] of Object.entries(ACTIVITIES)) worker.addNamedActivity(name, fn);
}

module.exports = { registerSamples, ORCHESTRATORS, ACTIVITIES, nextAttempt };

// Test orchestrations for the JavaScript worker (loaded with `worker.js --register`), each with a
// Python twin of the same shape in py_orchestrations.py: names end in JS / Py.
"use strict";

const { nextAttempt } = require("../../workers/js/samples");

/** Continue-as-new on each "next" event (saveEvents): the values seen, in the order raised. */
async function* EventsInOrderJS(context, seen) {
  const soFar = Array.isArray(seen) ? seen : [];
  const value = yield context.waitForExternalEvent("next");
  const all = [...soFar, value];
  if (all.length >= 5) return all;
  context.continueAsNew(all, true);
}

/** Calls `<id>:child`: RewindParentJS(depth - 1) while depth > 1, else RewindChildJS. */
async function* RewindParentJS(context, depth) {
  const levels = Number.isInteger(depth) ? depth : 1;
  const child = levels > 1 ? "RewindParentJS" : "RewindChildJS";
  return yield context.callSubOrchestrator(child, levels > 1 ? levels - 1 : undefined, {
    instanceId: `${context.instanceId}:child`,
  });
}

async function* RewindChildJS(context) {
  return yield context.callActivity("FailFirstJS", context.instanceId);
}

/** Fails the first attempt per key (counted in files, so a rewind or re-run succeeds). */
function FailFirstJS(context, key) {
  const attempt = nextAttempt(`fail-first/${key}`);
  if (attempt === 1) throw new Error(`first attempt for ${key} fails`);
  return `ok ${key} (attempt ${attempt})`;
}

function NullJS() {
  return null;
}

/** What the orchestration saw as input and activity result ("null" for the JSON value null). */
async function* NullsJS(context, input) {
  const result = yield context.callActivity("NullJS");
  const describe = (value) => (value === null ? "null" : typeof value);
  context.setCustomStatus({ input: describe(input), result: describe(result) });
  return result;
}

/** Python calling JavaScript: the prototype's orchestrator as a sub-orchestration. */
async function* EchoEventJS(context) {
  return yield context.waitForExternalEvent("echo");
}

function register(worker) {
  worker.addNamedOrchestrator("EventsInOrderJS", EventsInOrderJS);
  worker.addNamedOrchestrator("RewindParentJS", RewindParentJS);
  worker.addNamedOrchestrator("RewindChildJS", RewindChildJS);
  worker.addNamedOrchestrator("NullsJS", NullsJS);
  worker.addNamedOrchestrator("EchoEventJS", EchoEventJS);
  worker.addNamedActivity("FailFirstJS", FailFirstJS);
  worker.addNamedActivity("NullJS", NullJS);
}

module.exports = { register };

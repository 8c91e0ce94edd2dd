// Preloaded into the Azurite the kit starts (node --require): lookups by key stay fast as tables
// grow. Results, errors and what is stored are Azurite's own; only the order of the work changes.
//
// Azurite's table store keeps each table in a LokiJS collection with binary indices on
// PartitionKey and RowKey, but
// 1. it looks single entities up with findOne({RowKey, PartitionKey}), and LokiJS uses the index
//    of the first property only, then scans its matches. RowKeys repeat across partitions in a
//    task hub ("" on every Instances row, "sentinel" and the low sequence numbers in every
//    History partition), so every insert, upsert and point read scanned about one entity per
//    instance. Asking for the PartitionKey first finds the same entity through that index.
// 2. it evaluates a query's filter on every entity of the table. When the filter is a
//    conjunction with "PartitionKey eq '...'" in it (a task hub's History of one instance, a
//    page of one partition), every result is in that partition, so the scan starts from the
//    partition's entities (the PartitionKey index) and evaluates the whole filter on those.
"use strict";

const path = require("path");

function keyFirst(Loki) {
  const proto = Loki.Collection.prototype;
  if (proto.findOne.keyedLookups) return;
  const findOne = proto.findOne;
  const keyed = function (query) {
    if (query && typeof query === "object" && "RowKey" in query && "PartitionKey" in query) {
      const keys = Object.keys(query);
      if (keys[0] !== "PartitionKey") {
        const ordered = { PartitionKey: query.PartitionKey };
        for (const key of keys) if (key !== "PartitionKey") ordered[key] = query[key];
        query = ordered;
      }
    }
    return findOne.call(this, query);
  };
  keyed.keyedLookups = true;
  proto.findOne = keyed;
}

// The PartitionKey a filter's tree pins every result to ("PartitionKey eq 'v'" at the top or
// inside "and" only), else undefined.
function pinnedPartition(node) {
  if (!node) return undefined;
  if (node.name === "and") return pinnedPartition(node.left) ?? pinnedPartition(node.right);
  if (node.name !== "eq") return undefined;
  for (const [id, value] of [
    [node.left, node.right],
    [node.right, node.left],
  ]) {
    if (
      id && id.name === "id" && id.identifier === "PartitionKey" &&
      value && value.name === "constant" && typeof value.value === "string"
    ) {
      return value.value;
    }
  }
  return undefined;
}

function partitionFirst(Loki, src) {
  const persistence = path.join(src, "table", "persistence");
  const generator = require(path.join(persistence, "LokiTableStoreQueryGenerator.js")).default;
  const parse = require(path.join(persistence, "QueryInterpreter", "QueryParser.js")).default;
  if (generator.generateQueryEntityWhereFunction.keyedLookups) return;
  const generate = generator.generateQueryEntityWhereFunction;
  const pinned = function (query) {
    const where = generate.call(this, query);
    if (typeof query === "string" && query.includes("PartitionKey")) {
      try {
        const partition = pinnedPartition(parse(query));
        if (partition !== undefined) where.partitionKey = partition;
      } catch (error) {
        // Azurite's own parse above accepted it; leave the query as it is.
      }
    }
    return where;
  };
  pinned.keyedLookups = true;
  generator.generateQueryEntityWhereFunction = pinned;

  const resultset = Loki.Resultset.prototype;
  const where = resultset.where;
  resultset.where = function (fun) {
    if (typeof fun === "function" && fun.partitionKey !== undefined && !this.filterInitialized) {
      this.find({ PartitionKey: fun.partitionKey });
    }
    return where.call(this, fun);
  };
}

try {
  const src = path.dirname(process.argv[1] || "");
  const Loki = require(require.resolve("lokijs", { paths: [src, process.cwd()] }));
  keyFirst(Loki);
  partitionFirst(Loki, src);
  process.stderr.write("azurite_keyed_lookups: applied\n");
} catch (error) {
  // Not the Azurite layout this was written for: leave it as it is (only slower on big hubs).
  process.emitWarning(`azurite_keyed_lookups: not applied (${error.message})`);
}

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
//    When the conjunction bounds PartitionKey instead ("PartitionKey ge 'a' and PartitionKey
//    lt 'b'", a range of a parallel scan), a cheap comparison of the keys picks the entities in
//    the range first, and the whole filter is evaluated on those only. When range queries come
//    in a row on an unchanged table (the ranges and pages of a parallel scan), the keys are
//    sorted once and each range is found by binary search instead of a pass over the table.
//    (Not LokiJS's index here: it orders numeric-looking strings as numbers, Azure and Azurite
//    compare strings.)
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

const FLIPPED = { gt: "lt", ge: "le", lt: "gt", le: "ge", eq: "eq" };

// "PartitionKey <op> 'constant'" as [op, value] (op as if PartitionKey were on the left).
function keyComparison(node) {
  const flip = FLIPPED[node.name];
  if (!flip) return undefined;
  const isKey = (n) => n && n.name === "id" && n.identifier === "PartitionKey";
  const isText = (n) => n && n.name === "constant" && typeof n.value === "string";
  if (isKey(node.left) && isText(node.right)) return [node.name, node.right.value];
  if (isKey(node.right) && isText(node.left)) return [flip, node.left.value];
  return undefined;
}

// What a filter's tree says of PartitionKey in its top-level conjunction ("and" only):
// {eq} when it pins one partition, else {low, lowOpen, high, highOpen} bounds (either may be
// undefined), else undefined. Only a superset of the results is promised; the filter decides.
function partitionBounds(node) {
  const bounds = {};
  const visit = (n) => {
    if (!n) return;
    if (n.name === "and") {
      visit(n.left);
      visit(n.right);
      return;
    }
    const comparison = keyComparison(n);
    if (!comparison) return;
    const [op, value] = comparison;
    if (op === "eq") {
      if (bounds.eq === undefined) bounds.eq = value;
    } else if (op === "gt" || op === "ge") {
      if (bounds.low === undefined || value > bounds.low || (value === bounds.low && op === "gt")) {
        bounds.low = value;
        bounds.lowOpen = op === "gt";
      }
    } else if (bounds.high === undefined || value < bounds.high ||
               (value === bounds.high && op === "lt")) {
      bounds.high = value;
      bounds.highOpen = op === "lt";
    }
  };
  visit(node);
  if (bounds.eq !== undefined) return { eq: bounds.eq };
  if (bounds.low === undefined && bounds.high === undefined) return undefined;
  return bounds;
}

function inBounds(bounds) {
  const { low, lowOpen, high, highOpen } = bounds;
  return (entity) => {
    const key = entity.PartitionKey;
    if (typeof key !== "string") return true; // not a string: let the filter decide
    if (low !== undefined && (lowOpen ? key <= low : key < low)) return false;
    if (high !== undefined && (highOpen ? key >= high : key > high)) return false;
    return true;
  };
}

// The positions of a collection's entities in PartitionKey order, for range queries: built when
// a second range query finds the collection unchanged since the first (a parallel scan sends
// dozens in a row), dropped as soon as an entity is inserted or removed (a new data array, a
// new length or a new maxId: LokiJS raises maxId on every insert). Updates keep an entity's
// position and keys. Entities whose PartitionKey is not a string are always candidates.
const sortedViews = new WeakMap();

function sortedView(collection) {
  const { data, maxId } = collection;
  let view = sortedViews.get(collection);
  if (!view || view.data !== data || view.length !== data.length || view.maxId !== maxId) {
    view = { data, length: data.length, maxId, positions: undefined };
    sortedViews.set(collection, view);
    return undefined; // first range query on this state: a plain pass is cheaper than a sort
  }
  if (view.positions === undefined) {
    const positions = [];
    const others = [];
    for (let i = 0; i < data.length; i++) {
      (typeof data[i].PartitionKey === "string" ? positions : others).push(i);
    }
    positions.sort((a, b) => {
      const x = data[a].PartitionKey;
      const y = data[b].PartitionKey;
      return x < y ? -1 : x > y ? 1 : a - b;
    });
    view.positions = positions;
    view.keys = positions.map((i) => data[i].PartitionKey);
    view.others = others;
  }
  return view;
}

// First index of sorted `keys` whose key is > value (after) or >= value (not after).
function firstPast(keys, value, after) {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < value || (after && keys[mid] === value)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function positionsInBounds(view, bounds) {
  const { low, lowOpen, high, highOpen } = bounds;
  const start = low === undefined ? 0 : firstPast(view.keys, low, lowOpen);
  const end = high === undefined ? view.keys.length : firstPast(view.keys, high, !highOpen);
  const picked = start < end ? view.positions.slice(start, end) : [];
  return view.others.length ? picked.concat(view.others) : picked;
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
        const bounds = partitionBounds(parse(query));
        if (bounds !== undefined) where.partitionBounds = bounds;
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
    const bounds = typeof fun === "function" ? fun.partitionBounds : undefined;
    if (bounds !== undefined && !this.filterInitialized) {
      const view = bounds.eq === undefined ? sortedView(this.collection) : undefined;
      if (bounds.eq !== undefined) this.find({ PartitionKey: bounds.eq });
      else if (view === undefined) where.call(this, inBounds(bounds));
      else {
        this.filteredrows = positionsInBounds(view, bounds);
        this.filterInitialized = true;
      }
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

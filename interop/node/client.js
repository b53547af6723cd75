#!/usr/bin/env node
// kafkajs producer and consumer for the kafka-compat interop tests.
//
//   node client.js produce --bootstrap H:P --topic T [--partition N]
//        [--compression gzip] [--idempotent]        < messages.jsonl
//     stdin: {"key", "value", "headers": [[name, value]], "timestamp"} per line,
//     bytes in base64, null for null; stdout: {"offset": N} per message.
//
//   node client.js consume --bootstrap H:P --topic T --count N --group G
//        [--timeout-ms MS]
//     stdout: one record per line, same encoding plus partition and offset.
//     kafkajs only consumes through a consumer group.
//
//   node client.js group --bootstrap H:P --topic T --group G --name N (unused)
//        [--session-timeout-ms MS] [--heartbeat-interval-ms MS]
//     a group member speaking interop/group_worker.py's protocol: events as
//     JSON lines on stdout, commits after every batch, leaves the group and
//     exits on a "stop" line or the end of stdin.
//
//   node client.js transact --bootstrap H:P --transactional-id ID     < transactions.jsonl
//     stdin: one transaction a line, {"records": [[topic, partition, key, value]],
//     "commit": true|false}; each is begun, sent (acks=all) and committed or
//     aborted in turn by one transactional producer. stdout: {"done": N}.
//
//   node client.js read --bootstrap H:P --group G --partition TOPIC:P:COUNT ...
//        [--read-uncommitted] [--timeout-ms MS]
//     a fresh group subscribed to the topics from the beginning, read_committed
//     unless --read-uncommitted, until COUNT records of each named partition
//     arrived (kafkajs has no assign()); stdout: one record a line, the consume
//     encoding plus "topic". Records of other partitions are not printed; what
//     arrived is printed when the time is up too (the caller compares).
//
//   node client.js reassign --bootstrap H:P --topic T --partition N --replicas 3,2
//     AlterPartitionReassignments through the controller; stdout: {"ok": true}.
//
//   node client.js reassignments --bootstrap H:P
//     ListPartitionReassignments of every partition being reassigned;
//     stdout: {"topics": [{"name", "partitions": [{"partition", "replicas",
//     "addingReplicas", "removingReplicas"}]}]}.
'use strict';

const readline = require('readline');
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const BATCH = 500; // messages per send(): one request, contiguous offsets

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const opts = { command, partition: 0, timeoutMs: 60000 };
  for (let i = 0; i < rest.length; i++) {
    const name = rest[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (name === 'idempotent') opts.idempotent = true;
    else if (name === 'readUncommitted') opts.readUncommitted = true;
    else if (name === 'partition' && opts.command === 'read') (opts.partitions = opts.partitions || []).push(rest[++i]);
    else opts[name] = rest[++i];
  }
  for (const numeric of ['partition', 'count', 'timeoutMs', 'sessionTimeoutMs', 'heartbeatIntervalMs']) {
    if (opts[numeric] !== undefined) opts[numeric] = Number(opts[numeric]);
  }
  return opts;
}

function client(opts) {
  return new Kafka({
    clientId: 'interop-kafkajs',
    brokers: opts.bootstrap.split(','),
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100 },
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) =>
      process.stderr.write(`kafkajs ${namespace}: ${log.message} ${JSON.stringify(log)}\n`),
  });
}

const fromB64 = (s) => (s === null ? null : Buffer.from(s, 'base64'));
const toB64 = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'));

// kafkajs takes headers as an object; a repeated name becomes an array.
function headersObject(pairs) {
  const out = {};
  for (const [name, value] of pairs) {
    const buf = fromB64(value);
    if (!(name in out)) out[name] = buf;
    else if (Array.isArray(out[name])) out[name].push(buf);
    else out[name] = [out[name], buf];
  }
  return out;
}

function headerPairs(obj) {
  const pairs = [];
  for (const [name, value] of Object.entries(obj || {})) {
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, toB64(v)]);
  }
  return pairs;
}

async function readMessages() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const messages = [];
  for await (const line of lines) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    const message = { key: fromB64(m.key), value: fromB64(m.value), headers: headersObject(m.headers) };
    if (m.timestamp !== null) message.timestamp = String(m.timestamp);
    messages.push(message);
  }
  return messages;
}

async function produce(opts) {
  const messages = await readMessages();
  const producer = client(opts).producer({
    idempotent: Boolean(opts.idempotent),
    maxInFlightRequests: opts.idempotent ? 1 : undefined,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const compression = opts.compression ? CompressionTypes[opts.compression.toUpperCase()] : CompressionTypes.None;
  if (compression === undefined) throw new Error(`kafkajs has no codec ${opts.compression}`);
  try {
    for (let start = 0; start < messages.length; start += BATCH) {
      const batch = messages.slice(start, start + BATCH).map((m) => ({ ...m, partition: opts.partition }));
      const [meta] = await producer.send({ topic: opts.topic, acks: -1, compression, messages: batch });
      if (meta.errorCode !== 0) throw new Error(`produce error ${meta.errorCode}`);
      const base = BigInt(meta.baseOffset);
      const out = batch.map((_, i) => JSON.stringify({ offset: Number(base + BigInt(i)) })).join('\n');
      process.stdout.write(out + '\n');
    }
  } finally {
    await producer.disconnect();
  }
}

async function consume(opts) {
  const consumer = client(opts).consumer({ groupId: opts.group, maxWaitTimeInMs: 100 });
  await consumer.connect();
  let seen = 0;
  let finish;
  let fail;
  const done = new Promise((resolve, reject) => { finish = resolve; fail = reject; });
  const timer = setTimeout(
    () => fail(new Error(`timed out after ${opts.timeoutMs} ms with ${seen} of ${opts.count} records`)),
    opts.timeoutMs);
  consumer.on(consumer.events.CRASH, ({ payload }) => fail(payload.error));
  try {
    await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (seen >= opts.count) return;
        seen += 1;
        process.stdout.write(JSON.stringify({
          partition,
          offset: Number(message.offset),
          key: toB64(message.key),
          value: toB64(message.value),
          headers: headerPairs(message.headers),
          timestamp: Number(message.timestamp),
          timestamp_type: null,
        }) + '\n');
        if (seen >= opts.count) finish();
      },
    });
    await done;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

async function transact(opts) {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const transactions = [];
  for await (const line of lines) if (line.trim()) transactions.push(JSON.parse(line));
  const producer = client(opts).producer({
    transactionalId: opts.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  try {
    for (const t of transactions) {
      const transaction = await producer.transaction();
      try {
        const byTopic = new Map();
        for (const [topic, partition, key, value] of t.records) {
          if (!byTopic.has(topic)) byTopic.set(topic, []);
          byTopic.get(topic).push({ partition, key: fromB64(key), value: fromB64(value) });
        }
        await transaction.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
      } catch (err) {
        await transaction.abort();
        throw err;
      }
      if (t.commit) await transaction.commit();
      else await transaction.abort();
    }
    process.stdout.write(JSON.stringify({ done: transactions.length }) + '\n');
  } finally {
    await producer.disconnect();
  }
}

async function read(opts) {
  const wanted = new Map();
  for (const spec of opts.partitions) {
    const last = spec.lastIndexOf(':');
    const middle = spec.lastIndexOf(':', last - 1);
    wanted.set(`${spec.slice(0, middle)}:${spec.slice(middle + 1, last)}`, Number(spec.slice(last + 1)));
  }
  const seen = new Map();
  const complete = () => [...wanted].every(([k, n]) => (seen.get(k) || 0) >= n);
  const consumer = client(opts).consumer({
    groupId: opts.group, maxWaitTimeInMs: 100, readUncommitted: Boolean(opts.readUncommitted),
  });
  await consumer.connect();
  let finish;
  let fail;
  const done = new Promise((resolve, reject) => { finish = resolve; fail = reject; });
  const timer = setTimeout(() => {
    process.stderr.write(`read: timed out after ${opts.timeoutMs} ms with ${JSON.stringify([...seen])} of ${JSON.stringify([...wanted])}\n`);
    finish();
  }, opts.timeoutMs);
  consumer.on(consumer.events.CRASH, ({ payload }) => fail(payload.error));
  try {
    for (const topic of new Set([...wanted.keys()].map((k) => k.slice(0, k.lastIndexOf(':'))))) {
      await consumer.subscribe({ topic, fromBeginning: true });
    }
    if (complete()) finish();
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const k = `${topic}:${partition}`;
        if (!wanted.has(k)) return;
        seen.set(k, (seen.get(k) || 0) + 1);
        process.stdout.write(JSON.stringify({
          topic,
          partition,
          offset: Number(message.offset),
          key: toB64(message.key),
          value: toB64(message.value),
          headers: headerPairs(message.headers),
          timestamp: Number(message.timestamp),
          timestamp_type: null,
        }) + '\n');
        if (complete()) finish();
      },
    });
    await done;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

const emit = (event, fields) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');

// Resolves on a "stop" line or the end of stdin.
function stopRequested() {
  return new Promise((resolve) => {
    const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    lines.on('line', (line) => { if (line.trim() === 'stop') resolve(); });
    lines.on('close', resolve);
  });
}

// kafkajs is an eager-protocol client without rebalance callbacks: a
// rebalance it notices becomes "revoked" (everything), a completed join
// "assigned" (the whole new assignment).
async function group(opts) {
  if (opts.assignor && opts.assignor !== 'roundrobin') throw new Error(`kafkajs has no ${opts.assignor} assignor`);
  if (opts.instanceId) throw new Error('kafkajs has no static membership (group.instance.id)');
  const consumer = client(opts).consumer({
    groupId: opts.group,
    sessionTimeout: opts.sessionTimeoutMs || 6000,
    heartbeatInterval: opts.heartbeatIntervalMs || 500,
    maxWaitTimeInMs: 100,
  });
  let owned = [];
  consumer.on(consumer.events.REBALANCING, () => {
    emit('revoked', { partitions: owned, incremental: false });
    owned = [];
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    owned = [...(payload.memberAssignment[opts.topic] || [])].sort((a, b) => a - b);
    emit('assigned', { partitions: owned, incremental: false });
  });
  let crashed;
  const crash = new Promise((_, reject) => { crashed = reject; });
  consumer.on(consumer.events.CRASH, ({ payload }) => crashed(payload.error));
  await consumer.connect();
  await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      emit('records', { records: batch.messages.map((m) => [batch.partition, Number(m.offset)]) });
      const next = String(Number(batch.messages[batch.messages.length - 1].offset) + 1);
      try {
        await consumer.commitOffsets([{ topic: opts.topic, partition: batch.partition, offset: next }]);
      } catch (err) {
        emit('commit_failed', { error: `${err.name}: ${err.message}` });
        throw err;
      }
      emit('committed', { offsets: { [batch.partition]: Number(next) } });
    },
  });
  await Promise.race([stopRequested(), crash]);
  await consumer.disconnect();
  emit('closed', {});
}

async function reassign(opts) {
  const admin = client(opts).admin();
  await admin.connect();
  try {
    const replicas = opts.replicas.split(',').map(Number);
    await admin.alterPartitionReassignments({
      topics: [{ topic: opts.topic, partitionAssignment: [{ partition: opts.partition, replicas }] }],
    });
    process.stdout.write(JSON.stringify({ ok: true }) + '\n');
  } finally {
    await admin.disconnect();
  }
}

async function reassignments(opts) {
  const admin = client(opts).admin();
  await admin.connect();
  try {
    process.stdout.write(JSON.stringify(await admin.listPartitionReassignments({})) + '\n');
  } finally {
    await admin.disconnect();
  }
}

const opts = parseArgs(process.argv.slice(2));
const commands = { produce, consume, group, transact, read, reassign, reassignments };
if (!commands[opts.command]) {
  process.stderr.write('usage: client.js produce|consume|group|transact|read|reassign|reassignments --bootstrap H:P ...\n');
  process.exit(2);
}
commands[opts.command](opts).catch((err) => {
  process.stderr.write(`kafkajs ${opts.command} failed: ${err.stack || err}\n`);
  process.exit(1);
});

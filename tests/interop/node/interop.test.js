// Node.js interop tests for mediastore's gRPC API, run with Node's built-in
// runner (`node --test`) by tests/interop/run.sh against a live server whose
// address is in MEDIASTORE_ADDR. The protos are loaded at run time with
// @grpc/proto-loader from the repo's proto/ folder; error details
// (grpc-status-details-bin) are decoded with protobufjs and the
// google/rpc protos that the google-proto-files package ships.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const googleProtoFiles = require('google-proto-files');
const healthCheck = require('grpc-health-check');

const ADDR = process.env.MEDIASTORE_ADDR || '127.0.0.1:50051';
// The server's admin key (run.sh reads it from the data directory), sent
// on every call by a client interceptor.
const KEY = process.env.MEDIASTORE_KEY;
const bearer = (options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${KEY}`);
      next(metadata, listener);
    },
  });
const REPO = path.resolve(__dirname, '..', '..', '..');
// Every call gets a deadline, so a stuck server fails the suite instead of
// hanging it.
const T = 15000;
// Unique per run, so that runs against a kept database never collide.
const RUN = crypto.randomBytes(4).toString('hex');

const LOADER_OPTIONS = {
  includeDirs: [path.join(REPO, 'proto')],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

function loadMediastore() {
  const def = protoLoader.loadSync(
    [
      'mediastore/v1/media_service.proto',
      'mediastore/v1/folder_service.proto',
      'mediastore/v1/upload_service.proto',
      'mediastore/v1/binding_service.proto',
      'mediastore/v1/admin_service.proto',
      'mediastore/v1/error_reason.proto',
    ],
    LOADER_OPTIONS,
  );
  return { def, pkg: grpc.loadPackageDefinition(def).mediastore.v1 };
}

function loadHealth() {
  // grpc-health-check ships grpc/health/v1/health.proto as
  // proto/health/v1/health.proto.
  const dir = path.resolve(path.dirname(healthCheck.protoPath), '..', '..');
  const def = protoLoader.loadSync('health/v1/health.proto', { ...LOADER_OPTIONS, includeDirs: [dir] });
  return grpc.loadPackageDefinition(def).grpc.health.v1;
}

function loadRpcTypes() {
  // google-proto-files' root holds google/rpc/*.proto; protobufjs brings
  // google/protobuf/*.proto itself.
  const root = new protobuf.Root();
  const base = path.resolve(googleProtoFiles.getProtoPath(), '..');
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(base, target));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return {
    Status: root.lookupType('google.rpc.Status'),
    ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
    BadRequest: root.lookupType('google.rpc.BadRequest'),
  };
}

const { def: msDef, pkg } = loadMediastore();
const healthPkg = loadHealth();
const rpc = loadRpcTypes();
// The names of enum ErrorReason, as proto-loader describes them.
const ERROR_REASONS = new Set(
  msDef['mediastore.v1.ErrorReason'].type.value.map((v) => v.name),
);

let media;
let folders;
let uploads;
let health;

before(async () => {
  const creds = grpc.credentials.createInsecure();
  media = new pkg.MediaService(ADDR, creds, { interceptors: [bearer] });
  const shared = { channelOverride: media.getChannel(), interceptors: [bearer] };
  folders = new pkg.FolderService(ADDR, creds, shared);
  uploads = new pkg.UploadService(ADDR, creds, shared);
  health = new healthPkg.Health(ADDR, creds, { channelOverride: media.getChannel() });
  await new Promise((resolve, reject) =>
    media.waitForReady(Date.now() + 10000, (err) => (err ? reject(err) : resolve())),
  );
});

after(() => {
  media.close();
});

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function unary(client, method, req, timeoutMs = T) {
  return new Promise((resolve, reject) => {
    client[method](req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, resp) =>
      err ? reject(err) : resolve(resp),
    );
  });
}

async function rejects(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('the call succeeded; an error was expected');
}

// {info, bad} decoded from the error's grpc-status-details-bin trailer.
function details(err) {
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin');
  if (!raw || raw.length === 0) return { status: null, info: null, bad: null };
  const status = rpc.Status.decode(raw[0]);
  let info = null;
  let bad = null;
  for (const any of status.details) {
    if (any.type_url === 'type.googleapis.com/google.rpc.ErrorInfo') info = rpc.ErrorInfo.decode(any.value);
    if (any.type_url === 'type.googleapis.com/google.rpc.BadRequest') bad = rpc.BadRequest.decode(any.value);
  }
  return { status, info, bad };
}

function assertRpcError(err, code, reason, { field, fieldPrefix } = {}) {
  assert.ok(err && typeof err.code === 'number', `not a gRPC error: ${err}`);
  assert.equal(err.code, code, `code ${err.code} (${err.details}), expected ${code}`);
  const { status, info, bad } = details(err);
  assert.ok(status, `no grpc-status-details-bin in ${err.code} ${err.details}`);
  assert.equal(status.code, code, 'google.rpc.Status.code matches the call status');
  assert.ok(info, `no ErrorInfo in ${err.details}`);
  assert.equal(info.domain, 'mediastore');
  assert.equal(info.reason, reason, `reason (${err.details})`);
  assert.ok(ERROR_REASONS.has(info.reason), `${info.reason} is not an ErrorReason name`);
  if (field !== undefined || fieldPrefix !== undefined) {
    assert.ok(bad, `no BadRequest in ${err.details}`);
    const fields = bad.field_violations.map((v) => v.field);
    if (field !== undefined) assert.ok(fields.includes(field), `fields ${fields}`);
    else assert.ok(fields.some((f) => f.startsWith(fieldPrefix)), `fields ${fields}`);
  }
}

function textBytes(n) {
  const seed = crypto.randomBytes(8).toString('hex');
  const parts = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const line = Buffer.from(crypto.createHash('sha256').update(`${seed}:${i}`).digest('hex') + '\n');
    parts.push(line);
    len += line.length;
  }
  return Buffer.concat(parts).subarray(0, n);
}

const md5 = (buf) => crypto.createHash('md5').update(buf).digest('hex');

function uuid7() {
  const b = crypto.randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// A client-streaming call: returns {call, done} where done settles with the
// call's outcome.
function clientStream(client, method, timeoutMs = T) {
  let call;
  const done = new Promise((resolve, reject) => {
    call = client[method](new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, resp) =>
      err ? reject(err) : resolve(resp),
    );
  });
  done.catch(() => {}); // observed by the caller
  return { call, done };
}

function chunksOf(buf, size) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out.length ? out : [Buffer.alloc(0)];
}

async function upload(data, filename, opts = {}) {
  const { parent = '', size, finish = true, finishAlone = false, chunk = 64 * 1024, ...fields } = opts;
  const header = { filename, parent_folder_id: parent, ...fields };
  if (size !== undefined) header.size_bytes = String(size);
  const { call, done } = clientStream(media, 'UploadMedia');
  call.write({ header });
  const parts = chunksOf(data, chunk);
  parts.forEach((part, i) => {
    call.write({ data: part, finish_write: finish && !finishAlone && i === parts.length - 1 });
  });
  if (finish && finishAlone) call.write({ finish_write: true });
  call.end();
  return (await done).media;
}

async function readAll(mediaId, offset = 0, limit = 0) {
  const stream = media.ReadMedia(
    { media_id: mediaId, read_offset: String(offset), read_limit: String(limit) },
    { deadline: Date.now() + T },
  );
  const msgs = [];
  for await (const m of stream) msgs.push(m);
  assert.ok(msgs.length > 0, 'ReadMedia sent no message');
  return { first: msgs[0], rest: msgs.slice(1), bytes: Buffer.concat(msgs.map((m) => m.data)) };
}

async function listIds(parent = '', pageSize = 1000) {
  const ids = [];
  let token = '';
  for (;;) {
    const resp = await unary(media, 'ListMedia', {
      parent_folder_id: parent,
      page_size: pageSize,
      page_token: token,
      read_mask: { paths: ['id'] },
    });
    ids.push(...resp.media.map((m) => m.id));
    token = resp.next_page_token;
    if (!token) return ids;
  }
}

// Media.md5 once the server has computed it, or '' after `waitMs`.
async function md5WhenSet(mediaId, waitMs = 5000) {
  const end = Date.now() + waitMs;
  for (;;) {
    const m = (await unary(media, 'GetMedia', { media_id: mediaId })).media;
    if (m.md5 || Date.now() > end) return m.md5;
    await sleep(100);
  }
}

async function newFolder(prefix, parent = '') {
  const name = `${prefix}-${RUN}-${crypto.randomBytes(3).toString('hex')}`;
  return (await unary(folders, 'CreateFolder', { parent_folder_id: parent, name })).folder;
}

const S = grpc.status;

// ------------------------------------------------------------------ tests

test('a call without a key is UNAUTHENTICATED', async () => {
  const bare = new pkg.MediaService(ADDR, grpc.credentials.createInsecure());
  const err = await new Promise((resolve) =>
    bare.ListMedia({ page_size: 1 }, { deadline: Date.now() + 15000 }, (e) => resolve(e)),
  );
  bare.close();
  assert.equal(err && err.code, grpc.status.UNAUTHENTICATED);
});

test('upload with finish_write and no size stores the bytes', async () => {
  const data = textBytes(200000);
  const m = await upload(data, 'finish.txt');
  assert.equal(m.size_bytes, String(data.length));
  assert.equal(m.filename, 'finish.txt');
  assert.equal(m.ready, true);
  assert.ok((await readAll(m.id)).bytes.equals(data));
  // finish_write alone on a last, empty message works the same.
  const data2 = textBytes(1000);
  const m2 = await upload(data2, 'finish-alone.txt', { finishAlone: true });
  assert.ok((await readAll(m2.id)).bytes.equals(data2));
});

test('upload with a declared size ends with a clean half-close', async () => {
  const data = textBytes(150000);
  const m = await upload(data, 'sized.txt', { size: data.length, finish: false });
  assert.equal(m.size_bytes, String(data.length));
  assert.ok((await readAll(m.id)).bytes.equals(data));
});

test('a clean end without finish_write or size stores nothing', async () => {
  const before = (await listIds()).length;
  const err = await rejects(upload(textBytes(5000), 'nofinish.txt', { finish: false }));
  assertRpcError(err, S.INVALID_ARGUMENT, 'FINISH_WRITE_MISSING');
  assert.equal((await listIds()).length, before);
});

test('cancelled uploads store nothing', async () => {
  const folder = await newFolder('js-cancel');
  const before = (await listIds()).length;
  for (let i = 0; i < 20; i++) {
    const { call, done } = clientStream(media, 'UploadMedia');
    call.write({ header: { filename: `cancel-${i}.txt`, parent_folder_id: folder.id } });
    call.write({ data: textBytes(20000) });
    await sleep(20); // let the bytes reach the server
    call.cancel();
    const err = await rejects(done);
    assert.equal(err.code, S.CANCELLED, `try ${i}: ${err.details}`);
  }
  await sleep(500);
  assert.deepEqual(await listIds(folder.id), []);
  assert.equal((await listIds()).length, before);
});

test('a sized upload cancelled or expired before its last byte stores nothing', async () => {
  // All but the last bytes sent, then the call is cancelled or its deadline
  // passes. grpc-js closes such a stream with an empty END_STREAM DATA frame
  // and then RST_STREAM(CANCEL): the server sees a clean end short of the
  // declared size (SIZE_MISMATCH) or the reset, and stores nothing either
  // way. (After *every* declared byte, that END_STREAM is a finished upload
  // as far as the protocol goes; the README tells Node callers to use
  // finish_write without size_bytes where a cancel must never store.)
  const folder = await newFolder('js-sized-cut');
  const before = (await listIds()).length;
  for (let i = 0; i < 10; i++) {
    const how = i % 2 === 0 ? 'cancel' : 'deadline';
    const body = textBytes(3000);
    const { call, done } = clientStream(media, 'UploadMedia', how === 'cancel' ? T : 300);
    call.write({
      header: { filename: `sized-${how}-${i}.txt`, parent_folder_id: folder.id, size_bytes: String(body.length + 1) },
      data: body,
    });
    if (how === 'cancel') {
      await sleep(20); // let the bytes reach the server
      call.cancel();
    }
    const err = await rejects(done);
    assert.equal(err.code, how === 'cancel' ? S.CANCELLED : S.DEADLINE_EXCEEDED, `try ${i}: ${err.details}`);
  }
  await sleep(500);
  const stored = (await unary(media, 'ListMedia', { parent_folder_id: folder.id })).media;
  assert.deepEqual(stored.map((m) => m.filename), []);
  assert.equal((await listIds()).length, before);
});

test('a resumable upload goes on after a broken stream', async () => {
  const data = textBytes(600000);
  const chunk = 64 * 1024;
  const up = (
    await unary(uploads, 'StartUpload', { header: { filename: 'resumable.txt', size_bytes: String(data.length) } })
  ).upload;
  assert.equal(up.state, 'UPLOAD_STATE_ACTIVE');
  assert.equal(up.committed_size, '0');

  // First stream: part of the bytes, then the client goes away.
  const first = 4 * chunk;
  {
    const { call, done } = clientStream(uploads, 'WriteUpload');
    for (let off = 0; off < first; off += chunk) {
      call.write({ upload_id: up.id, write_offset: String(off), data: data.subarray(off, off + chunk) });
    }
    await sleep(300);
    call.cancel();
    const err = await rejects(done);
    assert.equal(err.code, S.CANCELLED);
  }

  let committed = 0;
  let q;
  for (const end = Date.now() + 5000; Date.now() < end; ) {
    q = (await unary(uploads, 'QueryUpload', { upload_id: up.id })).upload;
    committed = Number(q.committed_size);
    if (committed > 0) break;
    await sleep(50);
  }
  assert.ok(committed > 0, 'the server kept nothing of the broken stream');
  assert.ok(committed <= first, `committed ${committed} > sent ${first}`);
  assert.equal(q.state, 'UPLOAD_STATE_ACTIVE');

  // Second stream from the committed size, finishing the upload; the server
  // may still hold the broken stream for a moment (ABORTED, UPLOAD_BUSY).
  let doneUpload;
  for (const end = Date.now() + 5000; ; ) {
    const { call, done } = clientStream(uploads, 'WriteUpload');
    const offs = [];
    for (let off = committed; off < data.length; off += chunk) offs.push(off);
    offs.forEach((off, k) =>
      call.write({
        upload_id: up.id,
        write_offset: String(off),
        data: data.subarray(off, off + chunk),
        finish_write: k === offs.length - 1,
      }),
    );
    call.end();
    try {
      doneUpload = (await done).upload;
      break;
    } catch (err) {
      if (err.code !== S.ABORTED || Date.now() > end) throw err;
      assertRpcError(err, S.ABORTED, 'UPLOAD_BUSY');
      await sleep(50);
      committed = Number((await unary(uploads, 'QueryUpload', { upload_id: up.id })).upload.committed_size);
    }
  }
  assert.equal(doneUpload.state, 'UPLOAD_STATE_FINISHED');
  assert.equal(doneUpload.committed_size, String(data.length));
  assert.ok(doneUpload.media && doneUpload.media.id);
  assert.equal(doneUpload.media.size_bytes, String(data.length));
  assert.ok((await readAll(doneUpload.media.id)).bytes.equals(data));
  const sum = await md5WhenSet(doneUpload.media.id);
  if (sum) assert.equal(sum, md5(data));
  const after = (await unary(uploads, 'QueryUpload', { upload_id: up.id })).upload;
  assert.equal(after.state, 'UPLOAD_STATE_FINISHED');
  assert.equal(after.media.id, doneUpload.media.id);
});

test('ListMedia pages through a folder; a tampered token is refused', async () => {
  const folder = await newFolder('js-paging');
  const ids = new Set();
  for (let i = 0; i < 7; i++) ids.add((await upload(textBytes(100 + i), `page-${i}.txt`, { parent: folder.id })).id);
  assert.equal(ids.size, 7);
  const seen = [];
  const sizes = [];
  const tokens = [];
  let token = '';
  for (;;) {
    const resp = await unary(media, 'ListMedia', { parent_folder_id: folder.id, page_size: 3, page_token: token });
    sizes.push(resp.media.length);
    for (const m of resp.media) {
      assert.equal(m.parent_folder_id, folder.id);
      seen.push(m.id);
    }
    token = resp.next_page_token;
    if (!token) break;
    tokens.push(token);
    assert.ok(sizes.length < 10, 'paging does not end');
  }
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.equal(new Set(seen).size, seen.length, 'a media was repeated');
  assert.deepEqual(new Set(seen), ids);

  const tok = tokens[0];
  const k = Math.floor(tok.length / 2);
  const tampered = tok.slice(0, k) + (tok[k] !== 'A' ? 'A' : 'B') + tok.slice(k + 1);
  let err = await rejects(unary(media, 'ListMedia', { parent_folder_id: folder.id, page_size: 3, page_token: tampered }));
  assertRpcError(err, S.INVALID_ARGUMENT, 'PAGE_TOKEN_INVALID');
  const other = await newFolder('js-paging-other');
  err = await rejects(unary(media, 'ListMedia', { parent_folder_id: other.id, page_size: 3, page_token: tok }));
  assertRpcError(err, S.INVALID_ARGUMENT, 'PAGE_TOKEN_INVALID');
});

test('ReadMedia serves ranges', async () => {
  const data = textBytes(1500000); // over 1 MiB: several data messages
  const m = await upload(data, 'ranged.txt', { chunk: 1 << 20 });

  let r = await readAll(m.id, 1000, 5000);
  assert.equal(r.first.media.id, m.id);
  assert.deepEqual(r.first.content_range, { start: '1000', length: '5000', complete_length: String(data.length) });
  assert.equal(r.first.data.length, 0);
  for (const x of r.rest) {
    assert.equal(x.media, null);
    assert.equal(x.content_range, null);
  }
  assert.ok(r.bytes.equals(data.subarray(1000, 6000)));

  // Negative offset: the last 100 bytes.
  r = await readAll(m.id, -100);
  assert.equal(r.first.content_range.start, String(data.length - 100));
  assert.equal(r.first.content_range.length, '100');
  assert.ok(r.bytes.equals(data.subarray(data.length - 100)));

  // A limit past the end is cut to the end.
  r = await readAll(m.id, data.length - 10, 1000);
  assert.equal(r.first.content_range.length, '10');
  assert.ok(r.bytes.equals(data.subarray(data.length - 10)));

  // The whole media, in several messages.
  r = await readAll(m.id);
  assert.ok(r.rest.length >= 2, `${r.rest.length} data messages`);
  assert.ok(r.bytes.equals(data));
  const sum = await md5WhenSet(m.id);
  if (sum) assert.equal(md5(r.bytes), sum);

  const err = await rejects(readAll(m.id, data.length + 1));
  assertRpcError(err, S.OUT_OF_RANGE, 'READ_OFFSET_PAST_END');
});

test('GetRendition turns a PNG into a JPEG', async () => {
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAQAAAACCAIAAADwyuo0AAAAEklEQVR4nGM8ISfHAANMDEgAABlYAQijcLdOAAAAAElFTkSuQmCC',
    'base64',
  );
  const m = await upload(png, 'tiny.png', { content_type: 'image/png' });
  assert.equal(m.mime_type, 'image/png');
  assert.deepEqual([m.width, m.height], [4, 2]);
  const stream = media.GetRendition({ media_id: m.id, width: 2 }, { deadline: Date.now() + T });
  const msgs = [];
  for await (const x of stream) msgs.push(x);
  const r = msgs[0].rendition;
  assert.ok(r, 'first message has the rendition');
  assert.equal(r.mime_type, 'image/jpeg');
  assert.equal(r.width, 2);
  assert.equal(r.height, 1);
  const body = Buffer.concat(msgs.map((x) => x.data));
  assert.ok(body.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff])), `starts ${body.subarray(0, 3).toString('hex')}`);
  assert.equal(r.size_bytes, String(body.length));
});

test('folder calls', async () => {
  const root = (await unary(folders, 'GetRootFolder', {})).folder;
  assert.equal(root.path, '/');
  const a = await newFolder('js-a');
  const b = await newFolder('js-b');
  assert.equal(a.parent_folder_id, root.id);
  assert.equal(a.path, `/${a.name}/`);
  assert.equal(a.depth, 1);

  // ListFolders of the root, one per page.
  const names = [];
  let token = '';
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10000);
    const resp = await unary(folders, 'ListFolders', { parent_folder_id: '', page_size: 1, page_token: token });
    assert.ok(resp.folders.length <= 1);
    names.push(...resp.folders.map((f) => f.name));
    token = resp.next_page_token;
    if (!token) break;
  }
  assert.ok(names.includes(a.name) && names.includes(b.name), 'new folders listed');
  assert.equal(new Set(names).size, names.length, 'a folder was repeated');
  const byteOrder = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(names, byteOrder);

  const err = await rejects(unary(folders, 'CreateFolder', { parent_folder_id: '', name: a.name }));
  assertRpcError(err, S.ALREADY_EXISTS, 'FOLDER_ALREADY_EXISTS');

  const renamed = (await unary(folders, 'RenameFolder', { folder_id: a.id, name: `${a.name}-renamed` })).folder;
  assert.equal(renamed.name, `${a.name}-renamed`);
  assert.equal(renamed.path, `/${a.name}-renamed/`);

  const moved = (await unary(folders, 'MoveFolder', { folder_id: a.id, parent_folder_id: b.id })).folder;
  assert.equal(moved.parent_folder_id, b.id);
  assert.equal(moved.path, `/${b.name}/${renamed.name}/`);
  assert.equal(moved.depth, 2);

  assert.equal((await unary(folders, 'GetFolder', { folder_id: a.id })).folder.path, moved.path);
  assert.equal((await unary(folders, 'GetFolder', { path: moved.path })).folder.id, a.id);
  assert.equal((await unary(folders, 'GetFolder', { path: moved.path.replace(/\/$/, '') })).folder.id, a.id);

  const sub = await unary(folders, 'ListFolders', { parent_folder_id: b.id });
  assert.deepEqual(sub.folders.map((f) => f.id), [a.id]);

  const tree = (await unary(folders, 'GetFolderTree', { folder_id: b.id })).nodes;
  assert.deepEqual(tree.map((n) => [n.id, n.level]), [[b.id, 0], [a.id, 1]]);
  assert.equal(tree[1].parent_folder_id, b.id);
  assert.equal(tree[1].name, renamed.name);

  const gone = await unary(folders, 'DeleteFolder', { folder_id: b.id });
  assert.equal(gone.deleted_folder_count, '2');
  const err2 = await rejects(unary(folders, 'GetFolder', { folder_id: a.id }));
  assertRpcError(err2, S.NOT_FOUND, 'FOLDER_NOT_FOUND');
});

test('UpdateMedia changes only the masked fields', async () => {
  const m = await upload(textBytes(300), 'update.txt', { title: 'orig', tags: ['a'], author: 'auth' });
  assert.deepEqual([m.title, m.tags, m.author], ['orig', ['a'], 'auth']);
  const change = { id: m.id, title: 'new title', tags: ['x', 'y'], author: 'not masked' };
  const got = (await unary(media, 'UpdateMedia', { media: change, update_mask: { paths: ['title', 'tags'] } })).media;
  assert.equal(got.title, 'new title');
  assert.deepEqual([...got.tags].sort(), ['x', 'y']);
  assert.equal(got.author, 'auth');
  const again = (await unary(media, 'GetMedia', { media_id: m.id })).media;
  assert.deepEqual([again.title, [...again.tags].sort(), again.author], ['new title', ['x', 'y'], 'auth']);

  for (const p of ['no_such_field', 'size_bytes']) {
    const err = await rejects(unary(media, 'UpdateMedia', { media: change, update_mask: { paths: [p] } }));
    assertRpcError(err, S.INVALID_ARGUMENT, 'FIELD_MASK_INVALID', { fieldPrefix: 'update_mask' });
  }
  assert.equal((await unary(media, 'GetMedia', { media_id: m.id })).media.author, 'auth');
});

test('errors carry ErrorInfo and BadRequest', async () => {
  for (const missing of [crypto.randomUUID(), uuid7()]) {
    const err = await rejects(unary(media, 'GetMedia', { media_id: missing }));
    assertRpcError(err, S.NOT_FOUND, 'MEDIA_NOT_FOUND');
  }
  const err = await rejects(unary(media, 'GetMedia', { media_id: 'nope' }));
  assertRpcError(err, S.INVALID_ARGUMENT, 'FIELD_INVALID', { field: 'media_id' });
});

test('an upload cut by its deadline stores nothing', async () => {
  const folder = await newFolder('js-deadline');
  const before = (await listIds()).length;
  for (let i = 0; i < 10; i++) {
    // The header, then nothing: the stream stays open past the deadline.
    const { call, done } = clientStream(media, 'UploadMedia', 300);
    call.write({ header: { filename: `late-${i}.txt`, parent_folder_id: folder.id } });
    const err = await rejects(done);
    assert.equal(err.code, S.DEADLINE_EXCEEDED, `try ${i}: ${err.code} ${err.details}`);
  }
  await sleep(500);
  assert.deepEqual(await listIds(folder.id), []);
  assert.equal((await listIds()).length, before);
});

test('a unary call with a deadline in the past is DEADLINE_EXCEEDED', async () => {
  const err = await rejects(unary(folders, 'GetRootFolder', {}, -1000));
  assert.equal(err.code, S.DEADLINE_EXCEEDED);
});

test('health reports every service SERVING', async () => {
  for (const service of [
    '',
    'mediastore.v1.MediaService',
    'mediastore.v1.FolderService',
    'mediastore.v1.BindingService',
    'mediastore.v1.UploadService',
    'mediastore.v1.AdminService',
  ]) {
    const resp = await unary(health, 'Check', { service }).catch((e) => {
      throw new Error(`Check(${JSON.stringify(service)}): ${e.code} ${e.details}`);
    });
    assert.equal(resp.status, 'SERVING', `Check(${JSON.stringify(service)})`);
  }
});

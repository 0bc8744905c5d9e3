"""Python interop tests for mediastore's gRPC API.

Run by tests/interop/run.sh against a live server, with the address in
MEDIASTORE_ADDR. Needs only the packages of requirements.txt and the stubs
that run.sh generates (from the repo root) with

    python -m grpc_tools.protoc -I proto --python_out=GEN --pyi_out=GEN \
        --grpc_python_out=GEN proto/mediastore/v1/*.proto

into tests/interop/python/gen (or the folder MEDIASTORE_PY_GEN names).
Plain unittest: `python tests/interop/python/test_interop.py -v`.
"""

import hashlib
import os
import secrets
import struct
import sys
import threading
import time
import unittest
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("MEDIASTORE_PY_GEN", os.path.join(HERE, "gen")))

import grpc  # noqa: E402
from google.protobuf import field_mask_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from mediastore.v1 import error_reason_pb2  # noqa: E402
from mediastore.v1 import folder_service_pb2 as fs  # noqa: E402
from mediastore.v1 import folder_service_pb2_grpc as fs_grpc  # noqa: E402
from mediastore.v1 import media_pb2  # noqa: E402
from mediastore.v1 import media_service_pb2 as ms  # noqa: E402
from mediastore.v1 import media_service_pb2_grpc as ms_grpc  # noqa: E402
from mediastore.v1 import upload_service_pb2 as us  # noqa: E402
from mediastore.v1 import upload_service_pb2_grpc as us_grpc  # noqa: E402

ADDR = os.environ.get("MEDIASTORE_ADDR", "127.0.0.1:50051")
# The server's admin key (run.sh reads it from the data directory).
KEY = os.environ["MEDIASTORE_KEY"]
# Every call gets a deadline, so a stuck server fails the suite instead of
# hanging it.
T = 15.0
# Unique per run, so that runs against a kept database never collide.
RUN = secrets.token_hex(4)

channel = None
media = None
folders = None
uploads = None
health = None


def setUpModule():
    global channel, media, folders, uploads, health
    # The key as gRPC's own call credentials send it (`authorization:
    # Bearer ...`); local credentials let them travel over plaintext on
    # loopback, as they would over TLS elsewhere.
    creds = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.access_token_call_credentials(KEY),
    )
    channel = grpc.secure_channel(ADDR, creds)
    grpc.channel_ready_future(channel).result(timeout=10)
    media = ms_grpc.MediaServiceStub(channel)
    folders = fs_grpc.FolderServiceStub(channel)
    uploads = us_grpc.UploadServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)


def tearDownModule():
    channel.close()


# ---------------------------------------------------------------- helpers


def text_bytes(n, seed=None):
    """n bytes of printable text (allowed as text/plain by any server
    config), different on every call."""
    seed = seed or secrets.token_hex(8)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).hexdigest().encode() + b"\n"
        i += 1
    return bytes(out[:n])


def png_bytes(width, height):
    """A valid RGB PNG with random pixels."""
    rows = b"".join(b"\x00" + secrets.token_bytes(width * 3) for _ in range(height))

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def uuid7():
    ms_now = int(time.time() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms_now & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def details(err):
    """(ErrorInfo, BadRequest) of an RpcError, decoded from
    grpc-status-details-bin; either is None when absent."""
    status = rpc_status.from_call(err)
    info = bad = None
    if status is None:
        return None, None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
    return info, bad


def chunks_of(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def upload_requests(data, filename, parent="", size=None, finish=True,
                    finish_alone=False, chunk=64 * 1024, **header_fields):
    header = ms.UploadHeader(filename=filename, parent_folder_id=parent, **header_fields)
    if size is not None:
        header.size_bytes = size
    yield ms.UploadMediaRequest(header=header)
    parts = chunks_of(data, chunk)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        yield ms.UploadMediaRequest(data=part, finish_write=finish and last and not finish_alone)
    if finish and finish_alone:
        yield ms.UploadMediaRequest(finish_write=True)


def upload(data, filename="file.txt", **kw):
    return media.UploadMedia(upload_requests(data, filename, **kw), timeout=T).media


def read_all(media_id, offset=0, limit=0):
    """(first message, later messages, bytes) of a ReadMedia stream."""
    msgs = list(
        media.ReadMedia(
            ms.ReadMediaRequest(media_id=media_id, read_offset=offset, read_limit=limit),
            timeout=T,
        )
    )
    assert msgs, "ReadMedia sent no message"
    return msgs[0], msgs[1:], msgs[0].data + b"".join(m.data for m in msgs[1:])


def list_ids(parent="", page_size=1000):
    ids, token = [], ""
    while True:
        resp = media.ListMedia(
            ms.ListMediaRequest(
                parent_folder_id=parent,
                page_size=page_size,
                page_token=token,
                read_mask=field_mask_pb2.FieldMask(paths=["id"]),
            ),
            timeout=T,
        )
        ids += [m.id for m in resp.media]
        token = resp.next_page_token
        if not token:
            return ids


def md5_when_set(media_id, wait=5.0):
    """Media.md5 once the server has computed it, or "" after `wait` s."""
    end = time.monotonic() + wait
    while True:
        md5 = media.GetMedia(ms.GetMediaRequest(media_id=media_id), timeout=T).media.md5
        if md5 or time.monotonic() > end:
            return md5
        time.sleep(0.1)


def new_folder(prefix, parent=""):
    return folders.CreateFolder(
        fs.CreateFolderRequest(parent_folder_id=parent, name=f"{prefix}-{RUN}-{secrets.token_hex(3)}"),
        timeout=T,
    ).folder


class Base(unittest.TestCase):
    maxDiff = None

    def assertRpcError(self, err, code, reason, field=None, field_prefix=None):
        """err has `code`, an ErrorInfo with domain "mediastore" and
        `reason`, and, if asked, a BadRequest naming `field` (exactly) or a
        field starting with `field_prefix`."""
        self.assertIsInstance(err, grpc.RpcError)
        self.assertEqual(err.code(), code, f"code; details: {err.details()!r}")
        info, bad = details(err)
        self.assertIsNotNone(info, f"no ErrorInfo in {err!r}")
        self.assertEqual(info.domain, "mediastore")
        self.assertEqual(info.reason, reason, f"reason; details: {err.details()!r}")
        # The reason is one of the names of enum ErrorReason.
        error_reason_pb2.ErrorReason.Value(info.reason)
        if field is not None or field_prefix is not None:
            self.assertIsNotNone(bad, f"no BadRequest in {err!r}")
            fields = [v.field for v in bad.field_violations]
            if field is not None:
                self.assertIn(field, fields)
            else:
                self.assertTrue(any(f.startswith(field_prefix) for f in fields), fields)

    def call_error(self, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kw)
        return cm.exception


# ------------------------------------------------------------------ tests


class AuthTest(Base):
    def test_a_call_without_a_key_is_unauthenticated(self):
        with grpc.insecure_channel(ADDR) as bare:
            stub = ms_grpc.MediaServiceStub(bare)
            with self.assertRaises(grpc.RpcError) as cm:
                stub.ListMedia(ms.ListMediaRequest(page_size=1), timeout=T)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            # Health stays open.
            h = health_pb2_grpc.HealthStub(bare).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=T
            )
            self.assertEqual(h.status, health_pb2.HealthCheckResponse.SERVING)


class UploadTest(Base):
    def test_finish_write_without_size(self):
        data = text_bytes(200_000)
        m = upload(data, "finish.txt")
        self.assertEqual(m.size_bytes, len(data))
        self.assertEqual(m.filename, "finish.txt")
        self.assertTrue(m.ready)
        self.assertEqual(read_all(m.id)[2], data)
        # finish_write alone on a last, empty message works the same.
        data2 = text_bytes(1000)
        m2 = upload(data2, "finish-alone.txt", finish_alone=True)
        self.assertEqual(read_all(m2.id)[2], data2)

    def test_declared_size_and_clean_half_close(self):
        data = text_bytes(150_000)
        m = upload(data, "sized.txt", size=len(data), finish=False)
        self.assertEqual(m.size_bytes, len(data))
        self.assertEqual(read_all(m.id)[2], data)

    def test_clean_end_without_finish_or_size_stores_nothing(self):
        before = len(list_ids())
        err = self.call_error(upload, text_bytes(5000), "nofinish.txt", finish=False)
        self.assertRpcError(err, grpc.StatusCode.INVALID_ARGUMENT, "FINISH_WRITE_MISSING")
        self.assertEqual(len(list_ids()), before)

    def test_cancelled_uploads_store_nothing(self):
        folder = new_folder("py-cancel")
        before = len(list_ids())
        for i in range(20):
            sent = threading.Event()
            release = threading.Event()

            def requests(i=i, sent=sent, release=release):
                yield ms.UploadMediaRequest(
                    header=ms.UploadHeader(filename=f"cancel-{i}.txt", parent_folder_id=folder.id)
                )
                yield ms.UploadMediaRequest(data=text_bytes(20_000))
                sent.set()
                # Blocks the request stream open until the call is over.
                release.wait(30)

            future = media.UploadMedia.future(requests(), timeout=T)
            self.assertTrue(sent.wait(5))
            time.sleep(0.02)  # let the bytes reach the server
            self.assertTrue(future.cancel())
            release.set()
            self.assertTrue(future.cancelled())
        time.sleep(0.5)
        self.assertEqual(list_ids(folder.id), [])
        self.assertEqual(len(list_ids()), before)

    def test_sized_upload_cut_after_its_last_byte_stores_nothing(self):
        # Every declared byte sent, then no half-close: the call is
        # cancelled, or its deadline passes. Only the clean end, which never
        # comes, may store such an upload.
        folder = new_folder("py-sized-cut")
        before = len(list_ids())
        for i in range(10):
            how = "cancel" if i % 2 == 0 else "deadline"
            body = text_bytes(3000)
            sent = threading.Event()
            release = threading.Event()

            def requests(i=i, how=how, body=body, sent=sent, release=release):
                yield ms.UploadMediaRequest(
                    header=ms.UploadHeader(filename=f"sized-{how}-{i}.txt", parent_folder_id=folder.id,
                                           size_bytes=len(body)),
                    data=body,
                )
                sent.set()
                release.wait(30)

            try:
                if how == "cancel":
                    future = media.UploadMedia.future(requests(), timeout=T)
                    self.assertTrue(sent.wait(5))
                    time.sleep(0.02)  # let the bytes reach the server
                    self.assertTrue(future.cancel(), f"try {i}: the call ended before the cancel")
                else:
                    with self.assertRaises(grpc.RpcError) as cm:
                        media.UploadMedia(requests(), timeout=0.3)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, f"try {i}")
            finally:
                release.set()
        time.sleep(0.5)
        stored = media.ListMedia(ms.ListMediaRequest(parent_folder_id=folder.id), timeout=T).media
        self.assertEqual([m.filename for m in stored], [])
        self.assertEqual(len(list_ids()), before)


class ResumableTest(Base):
    def test_resume_after_broken_stream(self):
        data = text_bytes(600_000)
        chunk = 64 * 1024
        up = uploads.StartUpload(
            us.StartUploadRequest(
                header=ms.UploadHeader(filename="resumable.txt", size_bytes=len(data))
            ),
            timeout=T,
        ).upload
        self.assertEqual(up.state, us.UPLOAD_STATE_ACTIVE)
        self.assertEqual(up.committed_size, 0)

        # First stream: part of the bytes, then the client goes away.
        first = 4 * chunk
        sent = threading.Event()
        release = threading.Event()

        def first_stream():
            for off in range(0, first, chunk):
                yield us.WriteUploadRequest(upload_id=up.id, write_offset=off,
                                            data=data[off : off + chunk])
            sent.set()
            release.wait(30)

        future = uploads.WriteUpload.future(first_stream(), timeout=T)
        self.assertTrue(sent.wait(5))
        time.sleep(0.3)
        future.cancel()
        release.set()

        committed = 0
        end = time.monotonic() + 5
        while time.monotonic() < end:
            q = uploads.QueryUpload(us.QueryUploadRequest(upload_id=up.id), timeout=T).upload
            committed = q.committed_size
            if committed > 0:
                break
            time.sleep(0.05)
        self.assertGreater(committed, 0, "the server kept nothing of the broken stream")
        self.assertLessEqual(committed, first)
        self.assertEqual(q.state, us.UPLOAD_STATE_ACTIVE)

        # Second stream from the committed size, finishing the upload. The
        # server may still hold the broken stream for a moment: ABORTED
        # (UPLOAD_BUSY) then, retried.
        def second_stream(start):
            parts = list(range(start, len(data), chunk))
            for k, off in enumerate(parts):
                yield us.WriteUploadRequest(upload_id=up.id, write_offset=off,
                                            data=data[off : off + chunk],
                                            finish_write=k == len(parts) - 1)

        end = time.monotonic() + 5
        while True:
            try:
                done = uploads.WriteUpload(second_stream(committed), timeout=T).upload
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.ABORTED or time.monotonic() > end:
                    raise
                self.assertRpcError(e, grpc.StatusCode.ABORTED, "UPLOAD_BUSY")
                time.sleep(0.05)
                committed = uploads.QueryUpload(
                    us.QueryUploadRequest(upload_id=up.id), timeout=T
                ).upload.committed_size
        self.assertEqual(done.state, us.UPLOAD_STATE_FINISHED)
        self.assertEqual(done.committed_size, len(data))
        self.assertTrue(done.media.id)
        self.assertEqual(done.media.size_bytes, len(data))
        self.assertEqual(read_all(done.media.id)[2], data)
        md5 = md5_when_set(done.media.id)
        if md5:
            self.assertEqual(md5, hashlib.md5(data).hexdigest())
        q = uploads.QueryUpload(us.QueryUploadRequest(upload_id=up.id), timeout=T).upload
        self.assertEqual(q.state, us.UPLOAD_STATE_FINISHED)
        self.assertEqual(q.media.id, done.media.id)


class ListTest(Base):
    def test_paging_in_a_folder(self):
        folder = new_folder("py-paging")
        ids = {upload(text_bytes(100 + i), f"page-{i}.txt", parent=folder.id).id for i in range(7)}
        self.assertEqual(len(ids), 7)
        seen, sizes, token, tokens = [], [], "", []
        while True:
            resp = media.ListMedia(
                ms.ListMediaRequest(parent_folder_id=folder.id, page_size=3, page_token=token),
                timeout=T,
            )
            sizes.append(len(resp.media))
            seen += [m.id for m in resp.media]
            for m in resp.media:
                self.assertEqual(m.parent_folder_id, folder.id)
            token = resp.next_page_token
            if not token:
                break
            tokens.append(token)
            self.assertLess(len(sizes), 10, "paging does not end")
        self.assertEqual(sizes, [3, 3, 1])
        self.assertEqual(len(seen), len(set(seen)), "a media was repeated")
        self.assertEqual(set(seen), ids)

        # A tampered token is refused.
        tok = tokens[0]
        k = len(tok) // 2
        tampered = tok[:k] + ("A" if tok[k] != "A" else "B") + tok[k + 1 :]
        err = self.call_error(
            media.ListMedia,
            ms.ListMediaRequest(parent_folder_id=folder.id, page_size=3, page_token=tampered),
            timeout=T,
        )
        self.assertRpcError(err, grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
        # So is a token used with another folder.
        other = new_folder("py-paging-other")
        err = self.call_error(
            media.ListMedia,
            ms.ListMediaRequest(parent_folder_id=other.id, page_size=3, page_token=tok),
            timeout=T,
        )
        self.assertRpcError(err, grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


class ReadTest(Base):
    def test_ranged_reads(self):
        data = text_bytes(1_500_000)  # over 1 MiB: several data messages
        m = upload(data, "ranged.txt", chunk=1 << 20)

        first, rest, got = read_all(m.id, offset=1000, limit=5000)
        self.assertEqual(first.media.id, m.id)
        self.assertTrue(first.HasField("content_range"))
        self.assertEqual(first.content_range.start, 1000)
        self.assertEqual(first.content_range.length, 5000)
        self.assertEqual(first.content_range.complete_length, len(data))
        self.assertEqual(first.data, b"")
        for r in rest:
            self.assertFalse(r.HasField("media"))
            self.assertFalse(r.HasField("content_range"))
        self.assertEqual(got, data[1000:6000])

        # Negative offset: the last 100 bytes.
        first, _, got = read_all(m.id, offset=-100)
        self.assertEqual(first.content_range.start, len(data) - 100)
        self.assertEqual(first.content_range.length, 100)
        self.assertEqual(got, data[-100:])

        # A limit past the end is cut to the end.
        first, _, got = read_all(m.id, offset=len(data) - 10, limit=1000)
        self.assertEqual(first.content_range.length, 10)
        self.assertEqual(got, data[-10:])

        # The whole media, in several messages.
        first, rest, got = read_all(m.id)
        self.assertGreaterEqual(len(rest), 2)
        self.assertEqual(first.content_range.length, len(data))
        self.assertEqual(got, data)
        md5 = md5_when_set(m.id)
        if md5:
            self.assertEqual(hashlib.md5(got).hexdigest(), md5)

        # An offset past the end is OUT_OF_RANGE.
        err = self.call_error(read_all, m.id, offset=len(data) + 1)
        self.assertRpcError(err, grpc.StatusCode.OUT_OF_RANGE, "READ_OFFSET_PAST_END")


class RenditionTest(Base):
    def test_jpeg_rendition_of_a_png(self):
        png = png_bytes(4, 2)
        m = upload(png, "tiny.png", content_type="image/png")
        self.assertEqual(m.mime_type, "image/png")
        self.assertEqual((m.width, m.height), (4, 2))
        msgs = list(media.GetRendition(ms.GetRenditionRequest(media_id=m.id, width=2), timeout=T))
        self.assertTrue(msgs[0].HasField("rendition"))
        r = msgs[0].rendition
        self.assertEqual(r.mime_type, "image/jpeg")
        self.assertEqual(r.width, 2)
        self.assertEqual(r.height, 1)
        body = b"".join(x.data for x in msgs)
        self.assertEqual(body[:3], b"\xff\xd8\xff")
        self.assertEqual(r.size_bytes, len(body))


class FolderTest(Base):
    def test_folder_calls(self):
        root = folders.GetRootFolder(fs.GetRootFolderRequest(), timeout=T).folder
        self.assertEqual(root.path, "/")
        a = new_folder("py-a")
        b = new_folder("py-b")
        self.assertEqual(a.parent_folder_id, root.id)
        self.assertEqual(a.path, f"/{a.name}/")
        self.assertEqual(a.depth, 1)

        # ListFolders of the root, one per page.
        names, token, pages = [], "", 0
        while True:
            resp = folders.ListFolders(
                fs.ListFoldersRequest(parent_folder_id="", page_size=1, page_token=token), timeout=T
            )
            self.assertLessEqual(len(resp.folders), 1)
            names += [f.name for f in resp.folders]
            pages += 1
            token = resp.next_page_token
            if not token:
                break
            self.assertLess(pages, 10_000)
        self.assertIn(a.name, names)
        self.assertIn(b.name, names)
        self.assertEqual(len(names), len(set(names)), "a folder was repeated")
        self.assertEqual(names, sorted(names, key=lambda s: s.encode()))

        # A duplicate name is refused.
        err = self.call_error(
            folders.CreateFolder, fs.CreateFolderRequest(parent_folder_id="", name=a.name), timeout=T
        )
        self.assertRpcError(err, grpc.StatusCode.ALREADY_EXISTS, "FOLDER_ALREADY_EXISTS")

        renamed = folders.RenameFolder(
            fs.RenameFolderRequest(folder_id=a.id, name=a.name + "-renamed"), timeout=T
        ).folder
        self.assertEqual(renamed.name, a.name + "-renamed")
        self.assertEqual(renamed.path, f"/{a.name}-renamed/")

        moved = folders.MoveFolder(
            fs.MoveFolderRequest(folder_id=a.id, parent_folder_id=b.id), timeout=T
        ).folder
        self.assertEqual(moved.parent_folder_id, b.id)
        self.assertEqual(moved.path, f"/{b.name}/{renamed.name}/")
        self.assertEqual(moved.depth, 2)

        by_id = folders.GetFolder(fs.GetFolderRequest(folder_id=a.id), timeout=T).folder
        self.assertEqual(by_id.path, moved.path)
        by_path = folders.GetFolder(fs.GetFolderRequest(path=moved.path), timeout=T).folder
        self.assertEqual(by_path.id, a.id)
        by_path = folders.GetFolder(fs.GetFolderRequest(path=moved.path.rstrip("/")), timeout=T).folder
        self.assertEqual(by_path.id, a.id)

        sub = folders.ListFolders(fs.ListFoldersRequest(parent_folder_id=b.id), timeout=T)
        self.assertEqual([f.id for f in sub.folders], [a.id])

        tree = folders.GetFolderTree(fs.GetFolderTreeRequest(folder_id=b.id), timeout=T).nodes
        self.assertEqual([(n.id, n.level) for n in tree], [(b.id, 0), (a.id, 1)])
        self.assertEqual(tree[1].parent_folder_id, b.id)
        self.assertEqual(tree[1].name, renamed.name)

        gone = folders.DeleteFolder(fs.DeleteFolderRequest(folder_id=b.id), timeout=T)
        self.assertEqual(gone.deleted_folder_count, 2)
        err = self.call_error(folders.GetFolder, fs.GetFolderRequest(folder_id=a.id), timeout=T)
        self.assertRpcError(err, grpc.StatusCode.NOT_FOUND, "FOLDER_NOT_FOUND")


class UpdateTest(Base):
    def test_update_mask(self):
        m = upload(text_bytes(300), "update.txt", title="orig", tags=["a"], author="auth")
        self.assertEqual((m.title, list(m.tags), m.author), ("orig", ["a"], "auth"))
        change = media_pb2.Media(id=m.id, title="new title", tags=["x", "y"], author="not masked")
        got = media.UpdateMedia(
            ms.UpdateMediaRequest(media=change, update_mask=field_mask_pb2.FieldMask(paths=["title", "tags"])),
            timeout=T,
        ).media
        self.assertEqual(got.title, "new title")
        self.assertEqual(sorted(got.tags), ["x", "y"])
        self.assertEqual(got.author, "auth")
        again = media.GetMedia(ms.GetMediaRequest(media_id=m.id), timeout=T).media
        self.assertEqual((again.title, sorted(again.tags), again.author), ("new title", ["x", "y"], "auth"))

        for path in ["no_such_field", "size_bytes"]:
            err = self.call_error(
                media.UpdateMedia,
                ms.UpdateMediaRequest(media=change, update_mask=field_mask_pb2.FieldMask(paths=[path])),
                timeout=T,
            )
            self.assertRpcError(
                err, grpc.StatusCode.INVALID_ARGUMENT, "FIELD_MASK_INVALID", field_prefix="update_mask"
            )
        after = media.GetMedia(ms.GetMediaRequest(media_id=m.id), timeout=T).media
        self.assertEqual(after.author, "auth")


class ErrorTest(Base):
    def test_not_found_and_invalid_id(self):
        for missing in [str(uuid.uuid4()), uuid7()]:
            err = self.call_error(media.GetMedia, ms.GetMediaRequest(media_id=missing), timeout=T)
            self.assertRpcError(err, grpc.StatusCode.NOT_FOUND, "MEDIA_NOT_FOUND")
        err = self.call_error(media.GetMedia, ms.GetMediaRequest(media_id="nope"), timeout=T)
        self.assertRpcError(err, grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", field="media_id")


class DeadlineTest(Base):
    def test_upload_deadline_stores_nothing(self):
        folder = new_folder("py-deadline")
        before = len(list_ids())
        for i in range(10):
            release = threading.Event()

            def requests(i=i, release=release):
                yield ms.UploadMediaRequest(
                    header=ms.UploadHeader(filename=f"late-{i}.txt", parent_folder_id=folder.id)
                )
                release.wait(30)  # longer than the deadline

            try:
                with self.assertRaises(grpc.RpcError) as cm:
                    media.UploadMedia(requests(), timeout=0.3)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, f"try {i}")
            finally:
                release.set()
        time.sleep(0.5)
        self.assertEqual(list_ids(folder.id), [])
        self.assertEqual(len(list_ids()), before)

    def test_unary_deadline_in_the_past(self):
        err = self.call_error(folders.GetRootFolder, fs.GetRootFolderRequest(), timeout=-1)
        self.assertEqual(err.code(), grpc.StatusCode.DEADLINE_EXCEEDED)


class HealthTest(Base):
    def test_serving(self):
        for service in [
            "",
            "mediastore.v1.MediaService",
            "mediastore.v1.FolderService",
            "mediastore.v1.BindingService",
            "mediastore.v1.UploadService",
            "mediastore.v1.AdminService",
        ]:
            with self.subTest(service=service):
                resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=T)
                self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Builds each fuzz target's seed corpus in fuzz/corpus/TARGET.

Seeds are the committed test fixtures (files written by ffmpeg, exiftool,
piexif, libheif, qpdf: see tests/fixtures/README.md), the inputs that once
crashed a target (tests/fixtures/fuzzed/), plus small files of
the formats the fixtures lack, written here with the standard library
only, so the script runs on a fresh machine. libFuzzer mutates from these;
starting from real files it reaches deep into each parser in seconds.
"""

import io
import pathlib
import shutil
import struct
import sys
import wave
import zlib

ROOT = pathlib.Path(__file__).resolve().parent
FIXTURES = ROOT.parent / "tests" / "fixtures"


def png(w=3, h=2):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + bytes([200, 30, 30] * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp(w=2, h=2):
    row = (bytes([30, 30, 200] * w) + b"\0" * 4)[: (w * 3 + 3) // 4 * 4]
    pixels = row * h
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + len(pixels), 0, 0, 54) + header + pixels


def gif():
    # 1x1, two frames, global palette of two colours.
    frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c\0\0\0\0\x01\0\x01\0\0" + b"\x02\x02\x44\x01\x00"
    return b"GIF89a\x01\0\x01\0\x80\0\0\xff\0\0\0\0\xff" + frame + frame + b"\x3b"


def tiff(w=2, h=2):
    pixels = bytes([10, 200, 10] * w * h)
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (274, 3, 1, 6), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd_at = 8 + len(pixels)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\0" + struct.pack("<I", ifd_at) + pixels + ifd + b"\0\0\0\0"


def wav():
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\x10" * 800)
    return out.getvalue()


def aiff():
    frames = b"\x10\0" * 800
    # 80-bit extended 8000.0
    rate = b"\x40\x0b\xfa\0\0\0\0\0\0\0"
    comm = b"COMM" + struct.pack(">IhIh", 18, 1, 800, 16) + rate
    ssnd = b"SSND" + struct.pack(">III", 8 + len(frames), 0, 0) + frames
    body = b"AIFF" + comm + ssnd
    return b"FORM" + struct.pack(">I", len(body)) + body


def main():
    made = {"png": png(), "bmp": bmp(), "gif": gif(), "tiff": tiff(), "wav": wav(), "aiff": aiff()}
    fixtures = {p.name: p.read_bytes() for p in sorted(FIXTURES.iterdir())
                if p.is_file() and p.suffix not in (".py", ".md")}
    # Inputs that once crashed a target (tests/fixtures/fuzzed/TARGET-ID).
    fuzzed = [p for p in sorted((FIXTURES / "fuzzed").glob("*-*")) if p.suffix != ".md"]
    images = {k: v for k, v in fixtures.items()
              if k.endswith((".jpg", ".heic", ".avif"))} | {k: made[k] for k in ("png", "bmp", "gif", "tiff")}
    isobmff = {k: v for k, v in fixtures.items() if k.endswith((".mp4", ".mov", ".m4a", ".heic", ".avif"))}
    corpora = {
        "sniff": fixtures | made,
        "mp4": isobmff,
        "mkv": {k: v for k, v in fixtures.items() if k.endswith((".mkv", ".webm"))},
        "audio": {k: v for k, v in fixtures.items()
                  if k.endswith((".mp3", ".flac", ".ogg", ".opus", ".m4a"))} | {k: made[k] for k in ("wav", "aiff")},
        "pdf": {k: v for k, v in fixtures.items() if k.endswith(".pdf")},
        "image": images,
        "render": images,
    }
    for p in fuzzed:
        target = p.name.split("-")[0]
        corpora[target] = corpora[target] | {p.name: p.read_bytes()}
    wanted = sys.argv[1:] or list(corpora)
    for target in wanted:
        d = ROOT / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in corpora[target].items():
            (d / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(corpora[target])} seeds in {d}")


if __name__ == "__main__":
    main()

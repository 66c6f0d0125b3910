#!/usr/bin/env python3
"""Prints the share of an image's pixels within 24 of an RGB colour.

Reads what `virsh screenshot` writes: PNG (8-bit RGB/RGBA, non-interlaced) or binary PPM.
Standard library only, so the tests need no imaging package.
usage: screen_share.py FILE RRGGBB
"""
import struct, sys, zlib


def png_pixels(data):
    pos, chunks = 8, {}
    idat = b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if depth != 8 or color not in (2, 6) or interlace:
        raise SystemExit(f"unsupported PNG (depth {depth}, colour type {color}, interlace {interlace})")
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, rows, i = bytearray(stride), [], 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1: line[x] = (line[x] + a) & 255
            elif kind == 2: line[x] = (line[x] + b) & 255
            elif kind == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return [(r[x], r[x + 1], r[x + 2]) for r in rows for x in range(0, stride, bpp)]


def ppm_pixels(data):
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace(): pos += 1
        start = pos
        while not data[pos:pos + 1].isspace(): pos += 1
        fields.append(data[start:pos])
    width, height = int(fields[1]), int(fields[2])
    body = data[pos + 1:pos + 1 + width * height * 3]
    return [tuple(body[i:i + 3]) for i in range(0, len(body), 3)]


data = open(sys.argv[1], "rb").read()
pixels = png_pixels(data) if data.startswith(b"\x89PNG") else ppm_pixels(data)
want = bytes.fromhex(sys.argv[2])
close = sum(1 for p in pixels if all(abs(p[k] - want[k]) < 24 for k in range(3)))
print(close / max(1, len(pixels)))

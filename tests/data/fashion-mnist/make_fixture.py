"""Cuts the test fixture out of Debian's dataset-fashion-mnist: the first 300 training and 100 test images.

Run from this folder with the package installed:  python3 make_fixture.py
The gzip headers carry no name and mtime 0, so the output is the same bytes on every run.
"""
import gzip
import struct

SRC = "/usr/share/datasets/fashion-mnist"
KEEP = {"train": 300, "t10k": 100}


def cut(name: str, n: int) -> None:
    with gzip.open(f"{SRC}/{name}", "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), data[8 : 4 + 4 * dims])
    item = 1
    for d in shape:
        item *= d
    header = struct.pack(">II", magic, n) + data[8 : 4 + 4 * dims]
    body = data[4 + 4 * dims : 4 + 4 * dims + n * item]
    with open(name, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as g:
        g.write(header + body)


for split, n in KEEP.items():
    cut(f"{split}-images-idx3-ubyte.gz", n)
    cut(f"{split}-labels-idx1-ubyte.gz", n)

"""One breach's served self-check tags as a memory-mapped file, so that the web process does not
hold them in Python memory (533M tags are ~8.5 GB as bytes; mapped, the kernel pages in the
buckets asked for and can drop them again).

File layout (little-endian), written once and never changed (a new set of tags is a new file):

    magic  b"BNTAGS01"                       8 bytes
    bits   u32, reserved u32, count u64       the bucket width b and the number of tags
    offsets  (2^b + 1) x u64                  bucket i's tags are tags[offsets[i]:offsets[i+1]]
    tags     count x 16 bytes                 sorted by (bucket, tag)

:func:`export` writes it from an open store (streamed in Arrow batches, never the whole set in
memory) to a temporary name in the same directory, mode 0600, fsync, then renames it into place:
a reader sees either no file or a whole one. :class:`TagFile` maps it read-only. Tags are keyed
OPRF outputs, useless without the OPRF key, but they stay out of logs all the same.
"""

from __future__ import annotations

import array
import mmap
import os
import struct
import threading
import time
from pathlib import Path

import duckdb

from breach_notify.crypto.oprf import TAG_BYTES

MAGIC = b"BNTAGS01"
_HEAD = struct.Struct("<8sIIQ")
_BATCH = 1 << 18


class TagFileError(Exception):
    """The file is missing, truncated or not a tag file (export it again)."""


class TagFile:
    """A read-only view of one tag file; :meth:`bucket` returns that bucket's tags (bytes,
    sorted, concatenated)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _HEAD.size:
                    raise TagFileError("truncated")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError:
            raise TagFileError("unreadable") from None
        magic, bits, _, count = _HEAD.unpack_from(self._map, 0)
        self.bits, self.count = int(bits), int(count)
        self._tags = _HEAD.size + 8 * ((1 << self.bits) + 1)
        if magic != MAGIC or self.bits > 32 or size != self._tags + TAG_BYTES * self.count:
            self._map.close()
            raise TagFileError("not a tag file of the expected size")

    def bucket(self, index: int) -> bytes:
        """The tags of bucket ``index`` (empty outside ``0 .. 2^bits - 1``)."""
        if not 0 <= index < (1 << self.bits):
            return b""
        start, end = struct.unpack_from("<QQ", self._map, _HEAD.size + 8 * index)
        return self._map[self._tags + TAG_BYTES * start : self._tags + TAG_BYTES * end]

    def close(self) -> None:
        self._map.close()


def export(
    conn: duckdb.DuckDBPyConnection, breach_id: str, key_id: str, bits: int, path: Path
) -> TagFile:
    """Write the breach's tags under ``key_id`` (buckets of ``bits`` bits) to ``path``
    atomically (0600), and map it."""
    counts = conn.execute(
        """SELECT bucket, count(*) FROM selfcheck_tags
           WHERE breach_id = ? AND oprf_key_id = ? GROUP BY bucket""",
        [breach_id, key_id],
    ).fetchall()
    per = array.array("Q", bytes(8 * ((1 << bits) + 1)))
    for b, c in counts:
        if not 0 <= int(b) < (1 << bits):
            raise TagFileError("a bucket is wider than the breach's bucket bits")
        per[int(b) + 1] = int(c)
    total = 0
    for i in range(1, len(per)):
        total += per[i]
        per[i] = total
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_HEAD.pack(MAGIC, bits, 0, total))
            out.write(per.tobytes())
            written = 0
            reader = conn.sql(
                """SELECT tag FROM selfcheck_tags WHERE breach_id = $bid AND oprf_key_id = $kid
                   ORDER BY bucket, tag""",
                params={"bid": breach_id, "kid": key_id},
            ).to_arrow_reader(_BATCH)
            for batch in reader:
                column = batch.column(0)
                n = len(column)
                if n == 0:
                    continue
                offsets = memoryview(column.buffers()[1]).cast("i" if _small(column) else "q")
                first, last = offsets[column.offset], offsets[column.offset + n]
                if last - first != TAG_BYTES * n:
                    raise TagFileError("a stored tag is not 16 bytes")
                out.write(memoryview(column.buffers()[2])[first:last])
                written += n
            if written != total:
                raise TagFileError("the tags changed while they were exported")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return TagFile(path)


def remove_stale(folder: Path, keep: set[str], *, tmp_age: float = 86400.0) -> None:
    """Remove tag files not named in ``keep`` (a mapping still open stays valid until closed)
    and temporary files of exports that died more than ``tmp_age`` seconds ago."""
    if not folder.is_dir():
        return
    now = time.time()
    for old in folder.iterdir():
        try:
            unused = old.suffix == ".tags" and old.name not in keep
            if unused or (old.suffix == ".tmp" and now - old.stat().st_mtime > tmp_age):
                old.unlink(missing_ok=True)
        except OSError:
            continue


def _small(column: object) -> bool:
    """Whether an Arrow binary column has 32-bit offsets (``binary``, not ``large_binary``)."""
    import pyarrow as pa

    return bool(getattr(column, "type", None) == pa.binary())

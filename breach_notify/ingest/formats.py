"""Input files: discovery, content hashes, shards (byte ranges) and Arrow readers.

Files are read in place, never copied or unpacked to disk: plain files directly (optionally one
byte range of them), ``.gz`` through a streaming decompressor, ``.zip`` member by member.
Every reader yields Arrow record batches: one ``line`` column for ``facebook-2021``, the CSV's
own columns (as text) for ``csv``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.csv as pacsv

from breach_notify.errors import BadInput

FORMATS = ("facebook-2021", "csv")
#: Plain files larger than this are split into byte-range shards.
SHARD_BYTES = 256 * 1024 * 1024
_BLOCK = 1 << 22
_SNIFF = 1 << 16
#: Column names taken to be the phone column when ``--phone-column`` is not given.
PHONE_COLUMNS = (
    "phone",
    "phone_number",
    "phonenumber",
    "mobile",
    "msisdn",
    "tel",
    "telephone",
    "cell",
    "number",
)


@dataclass(frozen=True)
class Shard:
    """An independent piece of input: a file (or zip member), or a byte range of a plain file.

    Picklable and free of personal data: a path, offsets and the file's content hash.
    """

    index: int
    path: Path
    content_sha256: str
    size: int
    start: int = 0
    end: int | None = None  # None: to the end
    member: str | None = None  # zip member name
    #: At least the length of the file's longest line (bytes, plain files only; see ``scan``).
    line_bound: int = 0

    @property
    def label(self) -> str:
        """The file name shown in messages (never content)."""
        return self.path.name + (f"!{self.member}" if self.member else "")

    @property
    def nbytes(self) -> int:
        return (self.end if self.end is not None else self.size) - self.start


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what one shard may make the readers do (from the settings)."""

    #: A longer line is not read: it counts as invalid (``line_too_long``).
    max_line_bytes: int = 1 << 20
    #: A compressed file or member that decompresses to more is refused.
    max_decompressed_bytes: int = 256 << 30
    #: Decompressed bytes per compressed byte beyond which a file is refused (a "bomb"); checked
    #: as it is read, once :data:`RATIO_FLOOR` bytes are out.
    max_compression_ratio: float = 100.0


#: Below this many decompressed bytes the compression ratio is not checked (tiny files can be
#: very repetitive, and cannot hurt).
RATIO_FLOOR = 16 << 20


def expand(paths: list[Path], exclude: Path | None = None) -> list[Path]:
    """Files named directly, or every non-hidden file below a directory (except below
    ``exclude``, the data dir), sorted."""
    found: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for p in paths:
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
                and (skip is None or not f.resolve().is_relative_to(skip))
            )
        elif p.is_file():
            found.append(p)
        else:
            raise BadInput(f"{p}: no such file or directory; check the path")
    if not found:
        raise BadInput("no input files found; give a file or a directory holding dump files")
    return found


#: Content digests hash the file in chunks of this size, one chunk per task of a thread pool.
DIGEST_CHUNK = 64 * 1024 * 1024
_DIGEST_DOMAIN = b"breach-notify content v1\0"
_DIGEST_BLOCK = 1 << 18  # read size within a chunk (one reused buffer per task)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _Piece:
    """What one chunk's pass found: its digest, bytes read, and where its newlines are (first
    and last, absolute; -1: none) with a bound on the lines between them."""

    digest: bytes
    read: int
    first: int
    last: int
    inside: int


def _chunk_digest(fd: int, start: int, length: int) -> _Piece:
    """SHA-256 of ``length`` bytes at ``start`` of ``fd``, and its newlines.

    ``os.preadv`` and ``hashlib`` release the GIL, so chunks hash on all cores. Per block only
    the first and last newline are looked for (a few bytes' search each): a line inside a block
    is at most as long as the block, a line across blocks is measured exactly.
    """
    h = hashlib.sha256()
    buf = bytearray(min(_DIGEST_BLOCK, max(length, 1)))
    view = memoryview(buf)
    done = 0
    first = last = -1
    inside = 0
    while done < length:
        want = min(len(buf), length - done)
        got = os.preadv(fd, [view[:want]], start + done)
        if got == 0:
            break
        h.update(view[:got])
        lo = buf.find(b"\n", 0, got)
        if lo >= 0:
            hi = buf.rfind(b"\n", 0, got)
            at = start + done
            if first < 0:
                first = at + lo
            else:
                inside = max(inside, at + lo - last - 1)
            inside = max(inside, hi - lo - 1)
            last = at + hi
        done += got
    return _Piece(h.digest(), done, first, last, inside)


@dataclass(frozen=True)
class FileScan:
    """A file's identity (:func:`content_digest`) and a bound on its longest line (bytes, not
    counting the newline): no line is longer, and it is exact above the block size."""

    digest: str
    line_bound: int


def scan(path: Path) -> FileScan:
    """The file's identity (hex): a SHA-256 tree hash of its bytes (compressed bytes for
    .gz/.zip), stored as ``breach_files.content_sha256``, and its line bound, in one pass.

    The file is cut into ``DIGEST_CHUNK`` pieces hashed in parallel threads; the root is the
    SHA-256 of a domain tag, the total size and chunk size (8 bytes big-endian each) and the
    chunk digests in order. Not equal to ``sha256sum`` of the file. Raises ``BadInput`` naming
    the file (never its content) when it cannot be read.
    """
    chunk = DIGEST_CHUNK
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            size = os.fstat(fd).st_size
            starts = range(0, size, chunk)
            if len(starts) <= 1:
                parts = [_chunk_digest(fd, 0, size)]
            else:
                workers = min(_cpus(), len(starts))
                with ThreadPoolExecutor(workers, thread_name_prefix="content-digest") as pool:
                    parts = list(pool.map(lambda s: _chunk_digest(fd, s, chunk), starts))
        finally:
            os.close(fd)
    except OSError:
        raise BadInput(f"{path}: cannot be read; check its permissions") from None
    if sum(part.read for part in parts) != size:
        raise BadInput(f"{path}: changed while being read; retry when it is complete")
    root = hashlib.sha256(_DIGEST_DOMAIN)
    root.update(size.to_bytes(8, "big") + chunk.to_bytes(8, "big"))
    bound, last = 0, -1
    for part in parts:
        root.update(part.digest)
        if part.first >= 0:
            bound = max(bound, part.first - last - 1, part.inside)
            last = part.last
    bound = max(bound, size - last - 1)
    return FileScan(root.hexdigest(), bound)


def content_digest(path: Path) -> str:
    """The file's identity (see :func:`scan`)."""
    return scan(path).digest


def plan_shards(
    paths: list[Path], fmt: str, *, shard_bytes: int | None = None, exclude: Path | None = None
) -> list[Shard]:
    """Shards for ``paths``: one per file or zip member, plain facebook files split by bytes
    (``shard_bytes``, default :data:`SHARD_BYTES`).

    ``exclude`` (the data dir) is never read when a directory is given; a file whose content
    equals an earlier one's is left out.
    """
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    shard_bytes = shard_bytes or SHARD_BYTES
    shards: list[Shard] = []
    seen: set[str] = set()
    for path in expand(paths, exclude):
        found = scan(path)
        digest, bound = found.digest, found.line_bound
        if digest in seen:  # the same content twice in one call counts once
            continue
        seen.add(digest)
        size = path.stat().st_size
        if path.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    members = [i.filename for i in zf.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, OSError):
                raise BadInput(f"{path.name}: not a readable zip archive") from None
            for m in sorted(members):
                shards.append(Shard(len(shards), path, digest, size, member=m))
        elif fmt == "facebook-2021" and path.suffix.lower() != ".gz" and size > shard_bytes:
            for start in range(0, size, shard_bytes):
                end = min(start + shard_bytes, size)
                shards.append(Shard(len(shards), path, digest, size, start, end, None, bound))
        else:
            shards.append(Shard(len(shards), path, digest, size, line_bound=bound))
    return shards


class _Range(io.RawIOBase):
    """Bytes ``[start, end)`` of a file, widened to whole lines; counts bytes for progress.

    A range owns every line that *starts* inside it: it skips the partial line at ``start``
    (unless ``start`` is 0) and reads on past ``end`` to the end of the line that crosses it,
    a block at a time however long that line is.
    """

    def __init__(self, fh: IO[bytes], start: int, end: int | None, tick: Callable[[int], None]):
        self._fh, self._tick = fh, tick
        self._end = end
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                while (piece := fh.readline(_BLOCK)) and not piece.endswith(b"\n"):
                    pass
        self._pos = fh.tell()
        self._state = "range"  # then "finish" (the line across ``end``), then "done"
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = self._next(len(buf))
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._tick(n)
        return n

    def _next(self, want: int) -> bytes:
        if self._state == "done":
            return b""
        if self._state == "finish":
            data = self._fh.readline(_BLOCK)
            if not data or data.endswith(b"\n"):
                self._state = "done"
            return data
        if self._end is not None and self._pos + want >= self._end:
            self._state = "done"
            if self._pos >= self._end:  # the next line starts at or after ``end``: not ours
                return b""
            data = self._fh.read(self._end - self._pos)
            if data and not data.endswith(b"\n"):
                self._state = "finish"
        else:
            data = self._fh.read(want)
        self._pos += len(data)
        return data


class _LineLimit(io.RawIOBase):
    """The stream without its lines longer than ``limit`` bytes, each reported to
    ``on_long(is_first_line)``; a line ends at ``\\n`` or ``\\r``.

    Reads blocks of at most ``limit + 1`` bytes, so that a line inside one block is never too
    long and only the line across blocks needs measuring: it is held back (at most ``limit``
    bytes) until its end is seen, and skipped to its end once it is too long. A few searches per
    block; memory bounded by the limit.
    """

    def __init__(self, raw: IO[bytes], limit: int, on_long: Callable[[bool], None]) -> None:
        self._raw, self._limit, self._on_long = raw, limit, on_long
        self._read = min(_BLOCK, limit + 1)
        self._line = b""  # the start of the line not yet ended (at most ``limit`` bytes)
        self._skipping = False  # inside a line already found too long
        self._first = True  # still on the stream's first line
        self._out = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        while not self._out and not self._eof:
            self._out = memoryview(self._fill())
        n = min(len(buf), len(self._out))
        buf[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _too_long(self) -> None:
        self._on_long(self._first)
        self._line = b""

    def _fill(self) -> bytes:
        block = self._raw.read(self._read)
        if not block:
            self._eof = True
            rest, self._line = self._line, b""
            return b"" if self._skipping else rest
        lo = _first_end(block)
        if lo < 0:  # the line goes on
            if not self._skipping:
                if len(self._line) + len(block) > self._limit:
                    self._too_long()
                    self._skipping = True
                else:
                    self._line += block
            return b""
        head = b""
        if self._skipping:
            self._skipping, start = False, lo + 1
        elif len(self._line) + lo > self._limit:
            self._too_long()
            start = lo + 1
        else:
            head, start = self._line, 0
        self._first = False
        hi = max(block.rfind(b"\n"), block.rfind(b"\r"))
        self._line = block[hi + 1 :]
        return head + block[start : hi + 1]


def _first_end(block: bytes) -> int:
    """Where the first line ending (``\\n`` or ``\\r``) of ``block`` is, or -1."""
    n, r = block.find(b"\n"), block.find(b"\r")
    return n if r < 0 else r if n < 0 else min(n, r)


class _Counting(io.RawIOBase):
    """A pass-through reader of compressed bytes that counts them (progress, ratio cap)."""

    def __init__(self, fh: IO[bytes], tick: Callable[[int], None]) -> None:
        self._fh, self._tick = fh, tick
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()
        super().close()

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        data = self._fh.read(len(buf))
        buf[: len(data)] = data
        self._tick(len(data))
        self.consumed += len(data)
        return len(data)


class _Capped(io.RawIOBase):
    """Decompressed bytes, refused (``BadInput``) beyond the caps of ``limits``: the total, and
    the ratio to the compressed bytes ``consumed()`` so far."""

    def __init__(
        self,
        inner: IO[bytes],
        shard: Shard,
        limits: ReadLimits,
        consumed: Callable[[], int],
        closing: tuple[IO[bytes], ...] = (),
    ) -> None:
        self._inner, self._shard, self._limits = inner, shard, limits
        self._consumed, self._closing = consumed, closing
        self._out = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
        for f in self._closing:
            f.close()
        super().close()

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = self._inner.readinto(buf)  # type: ignore[attr-defined]
        self._out += n
        check_decompressed(self._shard, self._limits, self._out, self._consumed())
        return int(n)


def check_decompressed(shard: Shard, limits: ReadLimits, out: int, consumed: int) -> None:
    """``BadInput`` when ``out`` decompressed bytes (from ``consumed`` compressed ones) are over
    a cap, naming the setting to raise if the file is genuine."""
    if out > limits.max_decompressed_bytes:
        raise BadInput(
            f"{shard.label}: decompresses to more than {limits.max_decompressed_bytes} bytes; "
            "if the file is genuine, raise BREACH_NOTIFY_MAX_DECOMPRESSED_BYTES"
        )
    if out > RATIO_FLOOR and out > limits.max_compression_ratio * max(consumed, 1):
        raise BadInput(
            f"{shard.label}: decompresses to over {limits.max_compression_ratio:g} times its "
            "size (a decompression bomb?); if the file is genuine, raise "
            "BREACH_NOTIFY_MAX_COMPRESSION_RATIO"
        )


def open_bytes(
    shard: Shard, tick: Callable[[int], None] = lambda n: None, limits: ReadLimits = ReadLimits()
) -> IO[bytes]:
    """The shard's (decompressed) bytes as a stream; compressed data within ``limits``."""
    try:
        if shard.member is not None:
            with zipfile.ZipFile(shard.path) as zf:  # the member keeps the file open until closed
                info = zf.getinfo(shard.member)
                packed = max(info.compress_size, 1)
                check_decompressed(shard, limits, info.file_size, packed)  # as the header says
                member = zf.open(info)
                tick(shard.size // max(len(zf.infolist()), 1))
            capped = _Capped(member, shard, limits, lambda: packed)
            return io.BufferedReader(capped, _BLOCK)
        fh = shard.path.open("rb")
        if shard.path.suffix.lower() == ".gz":
            counting = _Counting(fh, tick)
            gz = gzip.GzipFile(fileobj=io.BufferedReader(counting, 1 << 20))
            capped = _Capped(cast(IO[bytes], gz), shard, limits, lambda: counting.consumed, (fh,))
            return io.BufferedReader(capped, _BLOCK)
        return io.BufferedReader(_Range(fh, shard.start, shard.end, tick), _BLOCK)
    except (OSError, zipfile.BadZipFile, KeyError):
        raise BadInput(f"{shard.label}: cannot be opened; check the file") from None


def head(shard: Shard) -> bytes:
    """The first bytes of the shard's content (for sniffing and the binary check)."""
    with read_errors(shard), open_bytes(shard) as fh:
        return fh.read(_SNIFF)


def check_not_binary(shard: Shard, sample: bytes) -> None:
    """Refuse content that is plainly not text (NUL bytes or mostly control bytes)."""
    if not sample:
        return
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    if b"\0" in sample or control > len(sample) // 20:
        raise BadInput(
            f"{shard.label}: looks like binary data, not a text dump; check the file and --format"
        )


def _open_csv(schema: pa.Schema, stream: IO[bytes], **options: Any) -> pa.RecordBatchReader:
    """``pyarrow.csv.open_csv``, with an empty input (or empty byte range) as an empty stream."""
    try:
        return pacsv.open_csv(stream, **options)
    except pa.ArrowInvalid as exc:
        if str(exc).startswith("Empty CSV"):
            return pa.RecordBatchReader.from_batches(schema, [])
        raise


def _skipper(on_bad: Callable[[], None]) -> Callable[[object], str]:
    def handler(row: object) -> str:
        on_bad()
        return "skip"

    return handler


def facebook_reader(
    stream: IO[bytes], on_bad: Callable[[], None], block: int = _BLOCK
) -> pa.RecordBatchReader:
    """Lines of a facebook-2021 stream as a one-column (``line``) Arrow stream; a line must fit
    in ``block`` bytes.

    Bytes are decoded as Latin-1, so stray invalid UTF-8 in name fields cannot fail the read
    (phone fields are ASCII digits either way). Blank lines are skipped.
    """
    return _open_csv(
        pa.schema([("line", pa.string())]),
        stream,
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=block, encoding="latin1"),
        parse_options=pacsv.ParseOptions(
            delimiter="\x1f",
            quote_char=False,
            escape_char=False,
            invalid_row_handler=_skipper(on_bad),
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"line": pa.string()},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


@contextmanager
def open_reader(
    shard: Shard,
    layout: CsvLayout | None,
    tick: Callable[[int], None],
    on_bad: Callable[[], None],
    limits: ReadLimits = ReadLimits(),
    on_long: Callable[[bool], None] = lambda first: None,
) -> Iterator[pa.RecordBatchReader]:
    """The shard's rows as Arrow batches: lines (``facebook-2021``, ``layout`` None) or the
    CSV's columns; the file is closed on exit.

    Lines longer than ``limits.max_line_bytes`` are left out, each reported to
    ``on_long(is_first_line)``.
    """
    limit = limits.max_line_bytes
    raw = open_bytes(shard, tick, limits)
    stream = io.BufferedReader(_LineLimit(raw, limit, on_long), _BLOCK)
    block = max(_BLOCK, 2 * limit)
    try:
        if layout is None:
            yield facebook_reader(stream, on_bad, block)
        else:
            yield csv_reader(stream, layout, on_bad, block)
    finally:
        stream.close()


@contextmanager
def read_errors(shard: Shard, fmt: str | None = None) -> Iterator[None]:
    """Reading failures as ``BadInput`` naming the file and the problem (never the library's
    text, which can quote data); ``fmt`` is the format the rows are read as."""
    try:
        yield
    except BadInput:
        raise
    except EOFError:
        problem = "the compressed data ends early (truncated file?); check the file is complete"
    except zipfile.BadZipFile as exc:
        crc = str(exc).startswith("Bad CRC-32")
        problem = (
            "corrupt zip member (bad CRC-32 checksum)" if crc else "corrupt zip member"
        ) + "; check the archive (e.g. unzip -t)"
    except gzip.BadGzipFile:
        problem = "corrupt gzip data (bad header or checksum); check the file"
    except zlib.error:
        problem = "corrupt compressed data; check the file"
    except (pa.ArrowException, UnicodeError):
        problem = f"cannot be read as {fmt or 'text'} (malformed data); check the file"
        if fmt:
            problem += " and --format"
    except OSError:
        problem = "cannot be read (I/O error); check the file"
    else:
        return
    raise BadInput(f"{shard.label}: {problem}") from None


@dataclass(frozen=True)
class CsvLayout:
    """What sniffing found: delimiter, encoding and column names (names only, never values)."""

    delimiter: str
    encoding: str
    columns: tuple[str, ...]


def sniff_csv(shard: Shard, sample: bytes) -> CsvLayout:
    """Delimiter (``,`` ``;`` tab ``|``), encoding and header of a CSV shard."""
    try:
        text = sample.decode("utf-8")
        encoding = "utf8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:  # a multi-byte character cut by the sample
            text = sample[: exc.start].decode("utf-8")
            encoding = "utf8"
        else:
            text, encoding = sample.decode("latin-1"), "latin1"
    first = text.splitlines()[0] if text else ""
    try:
        delimiter = csv.Sniffer().sniff(text[:_SNIFF], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = max(",;\t|", key=first.count)
    columns = next(csv.reader([first], delimiter=delimiter), [])
    if not columns:
        raise BadInput(f"{shard.label}: empty CSV (no header row); give a CSV with a header")
    return CsvLayout(delimiter, encoding, tuple(c.strip() for c in columns))


def csv_reader(
    stream: IO[bytes], layout: CsvLayout, on_bad: Callable[[], None], block: int = _BLOCK
) -> pa.RecordBatchReader:
    """Rows of a CSV stream (header skipped), every column as text, named ``c0``, ``c1``…; a
    row must fit in ``block`` bytes."""
    names = [f"c{i}" for i in range(len(layout.columns))]
    return _open_csv(
        pa.schema([(n, pa.string()) for n in names]),
        stream,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=1, block_size=block, encoding=layout.encoding
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter,
            newlines_in_values=True,
            invalid_row_handler=_skipper(on_bad),
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
